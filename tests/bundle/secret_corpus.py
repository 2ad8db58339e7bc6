"""Real-looking secrets (all fake: made-up values in the vendors' documented shapes) in the
places a bundle picks text up from: command lines, journal lines, config-like text.

Each case is (text, secrets that must not survive, ordinary words that must survive).
"""
from __future__ import annotations

AWS_ID = "AKIAQ3EGRIDXZ7YWN4PL"
AWS_SECRET = "k9Wq2Zr7Tn4Lm1Vb8Xc3Yd6Hf0Gj5Sa2Pe7Ru4I"
GCP_KEY = "AIzaSyC8vT4mQ2pX9rL6wN3bK7jH5dF1gS0aZxY"
AZURE_CONN_KEY = "Zk3u9Qm2Wn7Rb4Tc8Yv1Xe6Hd0Gf5Jp3Ls9Na2Mq7Wr4Et8Yu1Io6Pa5Sd3Fg=="
AZURE_SECRET = "Ab3" + "8Q~" + "Xy7Zq2Wv9Rt4Ul6Nm1Ko5Jp8Hs3Gd0Fc2Eb9"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvbmNhbGwtYm90Iiwic2NvcGUiOiJhZG1pbiJ9."
       "Qm9ndXNTaWduYXR1cmVGb3JUZXN0aW5nT25seTEyMzQ1Ng")
GH_TOKEN = "ghp_" + "R8mK2qW7xZ4nV9bT3cL6yH1jF5dS0aP2gE7u"
SLACK = "xoxb-" + "2719381-88412-ZkT7qW2mN9xV4bR1"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\n"
       "MIIEowIBAAKCAQEAzQ9hK3Tq8vW2nR7xL4mP1bY6cJ0dS5fG3hE9kA2uV8wZ7tN4\n"
       "rQ1mX6yB3vC9pL2kD5jF8hG0sA7eT4wU1iO6nM3bV9cX2zQ5rY8tP1kL4jH7gF0d\n"
       "-----END RSA PRIVATE KEY-----")
AUDIT_PW = "AuH3xPw7Qz2Lm"
AUDIT_PROCTITLE = ("type=PROCTITLE msg=audit(1732860000.123:4242): proctitle="
                   + f"mysql\0-u\0root\0-p{AUDIT_PW}\0-e\0select 1".encode().hex().upper())
AUDIT_SSHD = "type=PROCTITLE msg=audit(1732860000.123:4244): proctitle=" + "sshd: bob [priv]".encode().hex().upper()
PEM_BODY = "MIIEowIBAAKCAQEAzQ9hK3Tq8vW2nR7xL4mP1bY6cJ0dS5fG3hE9kA2uV8wZ7tN4"

CMDLINES = [
    ("/usr/bin/mysql -u app -pTr0ub4dor3xQ -h db01.internal -P 3306 orders", ["Tr0ub4dor3xQ"],
     ["/usr/bin/mysql", "db01.internal", "3306", "orders"]),
    ("mysqldump -u backup -p Zq8Hx2Lm9Wv3 --single-transaction shop", ["Zq8Hx2Lm9Wv3"], ["--single-transaction", "shop"]),
    ("/opt/app/bin/server --port 8443 --password=Sup3r-S3cret_Pw --config /etc/app/app.yaml",
     ["Sup3r-S3cret_Pw"], ["--port 8443", "/etc/app/app.yaml"]),
    ("java -Dspring.datasource.password=H7kQ2mW9xZ -jar /srv/api.jar --server.port=8080", ["H7kQ2mW9xZ"],
     ["/srv/api.jar", "--server.port=8080"]),
    ("worker --api-key 4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c --threads 8", ["4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"], ["--threads 8"]),
    ("sshpass -p Xw3Lq9Zt7 ssh -p 2222 deploy@10.1.2.3", ["Xw3Lq9Zt7"], ["-p 2222", "deploy@10.1.2.3"]),
    ("redis-cli -h cache01 -p 6379 -a Rd5Pw8Qz2Kx9 INFO", ["Rd5Pw8Qz2Kx9"], ["cache01", "6379", "INFO"]),
    ("psql postgresql://reporter:Pg9Wq2Zx7Lm4@db02.internal:5432/metrics -c 'select 1'", ["Pg9Wq2Zx7Lm4"],
     ["reporter", "db02.internal:5432/metrics"]),
    ("curl -s -H 'Authorization: Bearer Tk8Qw2Zm9Xv4Lp7Rn3' https://api.example.com/v2/items?page=3",
     ["Tk8Qw2Zm9Xv4Lp7Rn3"], ["https://api.example.com/v2/items?page=3"]),
    (f"aws s3 cp /var/backups/db.gz s3://bucket/ --access-key {AWS_ID}", [AWS_ID], ["/var/backups/db.gz", "s3://bucket/"]),
    (f"deploy.sh --token {GH_TOKEN} --env prod", [GH_TOKEN], ["deploy.sh", "--env prod"]),
    ("docker run -p 8080:80 -v /data:/data nginx:1.25", [], ["-p 8080:80", "/data:/data", "nginx:1.25"]),
    ("cp -p /etc/nginx/nginx.conf /root/nginx.conf.bak", [], ["cp -p /etc/nginx/nginx.conf /root/nginx.conf.bak"]),
    ("app --password-file /etc/app/pw.txt --port 9090", [], ["--password-file /etc/app/pw.txt", "--port 9090"]),
    # an @ in a password, percent-encoded as URLs require: the redactor decodes %40 before matching
    ("mongosh mongodb://bob:Pw%40Tail8Qz2Lm4@db01.internal/orders", ["Tail8Qz2Lm4"], ["mongodb://bob:", "@db01.internal/orders"]),
    ("wget --http-password Wg7Qz2Lm9Xv4 https://files.example.com/a.tar", ["Wg7Qz2Lm9Xv4"], ["https://files.example.com/a.tar"]),
    ("app --db-password Db8Qw2Zx7Lm --db-host db01 --no-password-prompt", ["Db8Qw2Zx7Lm"], ["--db-host db01"]),
    ("ansible-playbook --ask-pass site.yml", [], ["ansible-playbook --ask-pass site.yml"]),
    ("smbclient //fs01/share -U admin%Sb4Qw9Zx2Lm -c ls", ["Sb4Qw9Zx2Lm"], ["//fs01/share", "-U admin%", "-c ls"]),
    ("ldapsearch -x -D cn=admin,dc=corp -w Ld7Qz2Wx9Mn -b dc=corp", ["Ld7Qz2Wx9Mn"], ["cn=admin,dc=corp", "-b dc=corp"]),
    ("docker login -u ci -p Dk3Qw8Zx2Lm registry.example.com", ["Dk3Qw8Zx2Lm"], ["-u ci", "registry.example.com"]),
]

JOURNAL = [
    ("Accepted password for deploy from 10.0.0.7 port 51234 ssh2", [],
     ["Accepted password for deploy from 10.0.0.7 port 51234 ssh2"]),
    ("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.0.0.9", [],
     ["pam_unix(sshd:auth): authentication failure", "rhost=10.0.0.9"]),
    # XML (SOAP bodies, configuration dumps) and SQL that sets a password (PostgreSQL logs statements)
    ("soap fault: <soap:Body><Login><username>bob</username><password>XmlPw9Qz2Lm</password></Login></soap:Body>",
     ["XmlPw9Qz2Lm"], ["<username>bob</username><password>", "</password></Login></soap:Body>"]),
    ('config: <entry key="db.password">XmlEnPw8Qz2L</entry> <entry key="db.pool">20</entry>', ["XmlEnPw8Qz2L"],
     ['<entry key="db.password">', '<entry key="db.pool">20</entry>']),
    ("STATEMENT:  ALTER ROLE app WITH LOGIN PASSWORD 'SqlPw9Qz2Lm' VALID UNTIL 'infinity'", ["SqlPw9Qz2Lm"],
     ["STATEMENT:  ALTER ROLE app WITH LOGIN PASSWORD '", "VALID UNTIL 'infinity'"]),
    ("Query: CREATE USER 'app'@'%' IDENTIFIED BY 'SqlMyPw8Qz2';", ["SqlMyPw8Qz2"], ["CREATE USER 'app'@'%' IDENTIFIED BY '"]),
    ('FATAL:  password authentication failed for user "app"', [], ['FATAL:  password authentication failed for user "app"']),
    # a password typed at the login prompt as the user name; a real (mistyped) login stays
    ("Failed password for invalid user Hunter2Zq9Lm from 10.0.0.9 port 51234 ssh2", ["Hunter2Zq9Lm"],
     ["Failed password for invalid user ", " from 10.0.0.9 port 51234 ssh2"]),
    ("Invalid user deploy2 from 10.0.0.9 port 51236", [], ["Invalid user deploy2 from 10.0.0.9 port 51236"]),
    ("sudo: bob : TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx", [],
     ["sudo: bob : TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx"]),
    ("GET /api/v1/orders HTTP/1.1 Authorization: Basic ZGVwbG95Ok5vdFJlYWxQdzk4Nw== pid=4242", ["ZGVwbG95Ok5vdFJlYWxQdzk4Nw=="],
     ["GET /api/v1/orders HTTP/1.1"]),
    ("upstream request headers: Cookie: sessionid=Sx9Qw2Lm7Zt4Kp1Vn8; csrftoken=Cf3Rt6Yu9Io2", ["Sx9Qw2Lm7Zt4Kp1Vn8", "Cf3Rt6Yu9Io2"],
     ["upstream request headers"]),
    (f"token refresh ok: {JWT}", [JWT, JWT.split(".")[1]], ["token refresh ok"]),
    (f"boto: using credentials aws_access_key_id={AWS_ID} aws_secret_access_key={AWS_SECRET}", [AWS_ID, AWS_SECRET], ["boto: using"]),
    (f"maps client init key={GCP_KEY} region=eu-west1", [GCP_KEY], ["region=eu-west1"]),
    (f"connecting: DefaultEndpointsProtocol=https;AccountName=logs01;AccountKey={AZURE_CONN_KEY};EndpointSuffix=core.windows.net",
     [AZURE_CONN_KEY], ["AccountName=logs01", "EndpointSuffix=core.windows.net"]),
    (f"msal: client_secret={AZURE_SECRET} tenant=contoso", [AZURE_SECRET], ["tenant=contoso"]),
    (f"slack notify failed token={SLACK} status=429", [SLACK], ["status=429"]),
    ("redis: connect redis://:Rp4Lw8Qz2Xm6@10.0.3.4:6379/0 failed", ["Rp4Lw8Qz2Xm6"], ["10.0.3.4:6379/0 failed"]),
    # JSON encoders that escape slashes (PHP's json_encode, Monolog): :\/\/ is ://
    ('{"message":"db down","context":{"dsn":"pgsql:\\/\\/app:PhpPw9Qz2Lm@db01.internal\\/orders"}}', ["PhpPw9Qz2Lm"],
     ['"context":{"dsn":"pgsql:\\/\\/app:', '@db01.internal\\/orders"}}']),
    # a URL percent-encoded whole (a redirect or callback parameter)
    ("GET /cb?next=https%3A%2F%2Fbob%3AEncPw7Qz2Lm9%40files.internal%2Fx HTTP/1.1", ["EncPw7Qz2Lm9"], ["GET /cb?next=", " HTTP/1.1"]),
    ("session_token=Zt8Kq2Wm5Xv9Lp3Rn7Yc1 user=alice worker=3", ["Zt8Kq2Wm5Xv9Lp3Rn7Yc1"], ["user=alice", "worker=3"]),
    (PEM_BODY, [PEM_BODY], []),
    ("Out of memory: Killed process 4242 (app-worker) total-vm:812345kB, anon-rss:700000kB", [],
     ["Out of memory: Killed process 4242 (app-worker) total-vm:812345kB, anon-rss:700000kB"]),
    ("Speculative Store Bypass: Vulnerable", [], ["Speculative Store Bypass: Vulnerable"]),
    # audit records (journald's audit transport): an argv with a space, quote or control character
    # is hex-encoded (proctitle=, aN=), plain ones are quoted per argument
    (AUDIT_PROCTITLE, [AUDIT_PW, AUDIT_PW.encode().hex().upper()], ["type=PROCTITLE msg=audit(1732860000.123:4242): "]),
    ('type=EXECVE msg=audit(1732860000.123:4243): argc=4 a0="mysql" a1="-u" a2="root" a3="-pAuExPw8Lm3Qz"', ["AuExPw8Lm3Qz"],
     ["type=EXECVE msg=audit(1732860000.123:4243): argc=4", "mysql -u root -p"]),
    (AUDIT_SSHD, [], [AUDIT_SSHD]),
    # a JSON document logged inside a JSON string (container logs): escaped quotes delimit the values
    ('{"log":"{\\"db_password\\":\\"Js9Qw2Zx7Lm4\\",\\"user\\":\\"svc\\"}","stream":"stderr"}', ["Js9Qw2Zx7Lm4"],
     ['\\"user\\":\\"svc\\"', '"stream":"stderr"']),
    ('{"req":"{\\"Authorization\\": \\"Bearer Bq7Wz2Lm9Xc4Vn8Rt\\", \\"Cookie\\": \\"sid=Ck5Rt8Yu2Io9\\"}"}',
     ["Bq7Wz2Lm9Xc4Vn8Rt", "Ck5Rt8Yu2Io9"], ['{"req":"{\\"Authorization\\": \\"Bearer ']),
    ("nginx: worker 18 handled request 99812 in 33ms on port 8080 from /var/www/html/index.html", [],
     ["nginx: worker 18 handled request 99812 in 33ms on port 8080 from /var/www/html/index.html"]),
]

CONFIG = [
    ("[database]\nhost = db01.internal\nport = 5432\npassword = correct horse battery staple\n",
     ["correct horse battery staple", "horse battery"], ["host = db01.internal", "port = 5432"]),
    ('{"user": "svc", "apiKey": "Ak7Qw2Zx9Lm4Rt8Yp3", "timeout_ms": 3000}', ["Ak7Qw2Zx9Lm4Rt8Yp3"], ['"timeout_ms": 3000']),
    ("smtp:\n  username: alerts\n  password: 'Sm7Tp2Qw9Zx'\n  port: 587\n", ["Sm7Tp2Qw9Zx"], ["username: alerts", "port: 587"]),
    (f"private_key = \"\"\"\n{PEM}\n\"\"\"\nowner = ops\n", [PEM_BODY, "zQ9hK3Tq8vW2nR7xL4mP1bY6cJ0dS5fG3hE9kA2uV8wZ7tN4"], ["owner = ops"]),
    ("DB_PASSWORD=Vx8Qm2Lz7Wk4\nDB_HOST=10.0.0.5\nLOG_DIR=/var/log/app\n", ["Vx8Qm2Lz7Wk4"], ["DB_HOST=10.0.0.5", "LOG_DIR=/var/log/app"]),
    ("min_password_length = 12\npassword_file = /etc/app/secret.txt\n", [], ["min_password_length = 12", "password_file = /etc/app/secret.txt"]),
    ("[smtp]\nuser\t=\talerts\npassword\t=\tTabPw9Qz2Lm\n", ["TabPw9Qz2Lm"], ["user\t=\talerts"]),
    ("stringData:\n  username: svc\n  password: |\n    YamlBlk9Qz2Lm\n    SecondLine7Xq\n  port: 5432\n",
     ["YamlBlk9Qz2Lm", "SecondLine7Xq"], ["  username: svc", "  password: |", "  port: 5432"]),
    ("hmac_key: 9fK2qW8zX4mL7vR1tY6pN3bH5jD0sG2c\nretries: 5\n", ["9fK2qW8zX4mL7vR1tY6pN3bH5jD0sG2c"], ["retries: 5"]),
]

ALL = CMDLINES + JOURNAL + CONFIG
