"""Redaction of everything that goes into a bundle: command lines, journal lines, config text.

Why hand-written rules and not a library: detect-secrets (Apache-2.0, the maintained Python
option) scans files line by line with every plugin; on this project's test VM it ran at
0.28 MB/s with thousands of false positives on log text (shared/TESTBED.md), so a 2-hour busy
journal (~10 MB) would take ~36 s against a 10 s budget, and it reports findings rather than
rewriting text. gitleaks/trufflehog are Go binaries (an install on the sick host). The rules
below follow the same shapes those tools key on (detect-secrets' AWSKeyDetector, JwtTokenDetector,
PrivateKeyDetector, KeywordDetector, high-entropy strings; gitleaks' cloud key prefixes), cut
to what appears on a host, behind one cheap trigger regex so ordinary lines cost one search.

A secret is replaced by `[REDACTED:<rule>]`, never by a hash: a hash of a short password is
reversible by guessing (sos's obfuscation maps were: sos #3462, #3713). Only counts per rule
leave this module. Names, pids, ports and paths around a secret stay as they were.
"""
from __future__ import annotations

import math
import os
import re
import sys
from collections import Counter
from urllib.parse import quote, unquote
from dataclasses import dataclass, field, fields, is_dataclass

from hostdiag.core.sanitize import clean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_CONFIG = "/etc/hostdiag/redact.toml"
MAX_USER_PATTERNS = 200
MAX_PATTERN_CHARS = 1000
MAX_TEXT = 1 << 20       # one string longer than this is cut before matching (bounded regex time)
# One user pattern on one string, at most (the `regex` engine's timeout; a string here can be
# MAX_TEXT long, a catalog log line 8 KB: hence more than catalog.LINE_TIMEOUT_S).
USER_TIMEOUT_S = 0.25


def mark(rule: str) -> str:
    return f"[REDACTED:{rule}]"


# Names whose value is a secret whatever it looks like.
_STRONG = (r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key"
           r"|private[_-]?key|client[_-]?secret|auth[_-]?token|credentials?|sas[_-]?token")
# Names whose value is a secret only when it looks random (high entropy).
_WEAK = r"key|auth|cred|sig|signature|session(?:[_-]?id)?|sessid|salt|nonce|bearer|cookie|jwt|hmac"
# A strong name that really names a file, a length or a policy: its value is not the secret.
_NOT_SECRET_NAME = re.compile(r"(?i)(?:file|path|dir|length|len|min|max|ttl|timeout|expiry|expires|age|count"
                              r"|type|policy|prompt|algo|algorithm|method|mode|id_?name|url|endpoint|env)$")
_PLACEHOLDER = re.compile(r"(?i)^(?:\*+|x+|<[^>]*>|\$\{?[\w.]+\}?|%[sd]|\{\{.*\}\}|null|none|nil|true|false"
                          r"|yes|no|on|off|required|optional|redacted|\[redacted[^\]]*\]|changeme|\?+|-"
                          r"|[|>][+-]?\d?)$")   # a YAML block indicator: the value is on the lines below

# Cheap gate: a string without any of these cannot match a built-in rule. Matched against the
# lower-cased text: an (?i) alternation is ~5x slower in CPython's re.
_TRIGGER = re.compile(
    r"pass|pwd|secret|token|key|auth|cred|sig|sess|salt|nonce|bearer|cookie|jwt|hmac|://|:\\/\\/|akia|asia"
    r"|a3t|aiza|ya29|gocspx|eyj|-----begin|gh[pousr]_|github_pat|xox[a-z]-|glpat-|sk[-_]|q~|mysql|mariadb"
    r"|mongo|sshpass|redis-cli|smbclient|ldap|\slogin\s|invalid user|identified|[a-z0-9+/]{60}")


@dataclass
class Rule:
    name: str
    rx: re.Pattern
    repl: object              # str template or callable(match) -> str | None (None: leave as is)
    gated: bool = True        # behind _TRIGGER (user patterns are not)
    timeout: float | None = None   # a user pattern the stdlib engine cannot bound (see user_rules)
    needs: tuple = ()         # lower-case words one of which the text must hold (skips the scan)


def _keep_prefix(group: str, rule: str):
    def f(m: re.Match) -> str:
        return m.group(group) + mark(rule)
    return f


def _entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


def looks_random(v: str) -> bool:
    """A value that reads like a key: long enough, mixed characters, high Shannon entropy."""
    if len(v) < 16 or v.isdigit() or v.startswith(("/", "./", "~")):
        return False
    classes = sum(bool(re.search(p, v)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    return classes >= 2 and _entropy(v) >= 3.5


def _unquote(m: re.Match) -> tuple[str, str, str]:
    """(quote, value, rest) of the `val` alternation: \\"escaped\\", "quoted", 'quoted' or bare."""
    for q, g in (('\\"', "eq"), ('"', "dq"), ("'", "sq")):
        if m.group(g) is not None:
            return q, m.group(g), q
    return "", m.group("bare"), ""


def _keyword(strong: bool, rule: str):
    def f(m: re.Match) -> str | None:
        name = m.group("name")
        q, val, q2 = _unquote(m)
        if not val or _PLACEHOLDER.match(val) or val.startswith("[REDACTED"):
            return None
        if _NOT_SECRET_NAME.search(name.rstrip("_-")) or name in ("PWD", "OLDPWD") and val.startswith("/"):
            return None     # PWD=/home/bob: the working directory (sudo logs it), not a password
        if not strong and not looks_random(val):
            return None
        return m.group("name") + m.group("sep") + q + mark(rule) + q2
    return f


# \"x\": a JSON string inside a JSON string (container and app logs): the escaped quotes delimit it.
_VAL = r"""(?:\\"(?P<eq>(?:[^"\\\n]|\\(?!"))*)\\"|"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<bare>(?!\\")[^\s"',;&}\]\)]+))"""


# The keyword starts the name or follows a separator or a camelCase hump: db_password,
# X-Api-Key, dbPassword; never inside a word (Bypass, monkey, tokenizer).
# PGPASSWORD, ROOTPWD: an upper-case environment name glued to the keyword (not BYPASS, Bypass).
# A name starts after none of [\w.-] (_NAME): a start after every dot made `a.a.a.a...` quadratic
# (8 KB of it: 2.5 s per line); the prefix takes the dots instead (app.config.dbPassword).
_PRE = (r"(?:[\w.-]*[_.-]|[\w.-]*(?-i:[a-z0-9](?=[A-Z]))"
        r"|(?-i:(?:[\w.-]*[_.-])?[A-Z][A-Z0-9]*(?=PASSWORD|PASSWD|PWD|SECRET|TOKEN|APIKEY|ACCESSKEY)))?")
_NAME = r"(?<![\w.-])"
_SUF = r"(?:[_.-][\w.-]*|(?-i:[A-Z])[\w.-]*|s|\d+)?"


def _kw_rx(names: str) -> re.Pattern:
    # name (possibly prefixed/suffixed: db_password, X-Api-Key, aws_secret_access_key) then = or :
    return re.compile(r"(?i)" + _NAME + r"(?P<name>" + _PRE + r"(?:" + names + r")" + _SUF + r")(?P<sep>\\?\"?'?\s*[:=]\s*)" + _VAL)


def _config_line(m: re.Match) -> str | None:
    """`password = two words` / `password: x y`: the rest of the line is the value. Not for
    `token=abc user=bob` (a log line of key=value pairs: the inline rule takes each value)."""
    name, val = m.group("name"), m.group("val").strip()
    sep = m.group("head")[m.start("name") - m.start("head") + len(name):]
    if "=" in sep and not sep.strip("=") or re.search(r"\s[\w.-]+=\S", val) or val[:1] in "\"'":
        return None     # quoted values: the inline rule takes exactly the quoted part
    if _NOT_SECRET_NAME.search(name.rstrip("_-")) or _PLACEHOLDER.match(val.strip("\"'")):
        return None
    if val.startswith("[REDACTED"):
        return None
    return m.group("head") + mark("keyword")


def _xml_value(m: re.Match) -> str | None:
    name, val = m.group("name") or m.group("attr"), m.group("val").strip()
    if not val or _PLACEHOLDER.match(val) or val.startswith("[REDACTED") or _NOT_SECRET_NAME.search(name.rstrip("_-")):
        return None
    return m.group("head") + mark("xml_element")


def _short_flag(m: re.Match) -> str | None:
    val = m.group("val")
    if _PLACEHOLDER.match(val) or val.startswith(("[REDACTED", "-")) or val.isdigit():
        return None     # a bare number after -p is a port (mongo -p 27017 is rare; a port is not secret)
    return m.group("head") + mark("cmdline_password")


_END = r"(?=(?:…\[\+\d+ chars\])?\Z)"
_PRIVATE_KEY = re.compile(r"-----BEGIN (?P<kind>[A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----.*?"
                          r"(?:-----END (?P=kind)PRIVATE KEY( BLOCK)?-----|\Z)", re.S)

BUILTIN: tuple[Rule, ...] = (
    Rule("private_key", _PRIVATE_KEY, lambda m: mark("private_key"), needs=("-----begin",)),
    # A PEM body line logged on its own (a key printed line by line into the journal).
    # [ \t]*, not \s*: \s* ran over every following newline from each line start (quadratic on blank lines).
    Rule("private_key", re.compile(r"(?m)^[ \t]*(?=[A-Za-z0-9+/]*[0-9])(?=[A-Za-z0-9+/]*[A-Z])[A-Za-z0-9+/]{60,76}={0,2}[ \t\r]*$"),
         lambda m: mark("private_key")),
    Rule("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), lambda m: mark("jwt"), needs=("eyj",)),
    # Authorization: Basic/Bearer/Digest ... and Cookie: a=b; c=d: the header value to its end.
    # Authorization: Basic/Bearer x takes one token (a cmdline loses its quotes, so what follows
    # is other text); Digest/NTLM/unknown schemes can hold spaces: the value to the quote or line end.
    Rule("auth_header", re.compile(r"(?i)(?P<head>\b(?:proxy-)?authorization\\?\"?\s*[:=]\s*\\?\"?(?:basic|bearer|token|apikey)\s+)"
                                   r"[^\s\\\"']+"), _keep_prefix("head", "auth_header"), needs=("authorization",)),
    Rule("auth_header", re.compile(r"(?i)(?P<head>\b(?:proxy-)?authorization\\?\"?\s*[:=]\s*\\?\"?(?:digest|negotiate|ntlm"
                                   r"|aws4-hmac-sha256)\s+)[^\n]+"), _keep_prefix("head", "auth_header"), needs=("authorization",)),
    Rule("auth_header", re.compile(r"(?i)(?P<head>\b(?:proxy-)?authorization\\?\"?\s*[:=]\s*\\?\"?)(?!\[REDACTED)"
                                   r"(?!(?:basic|bearer|token|apikey|digest|negotiate|ntlm|aws4-hmac-sha256)\s)"
                                   r"[^\s\\\"'][^\\\"'\n]*"), _keep_prefix("head", "auth_header"), needs=("authorization",)),
    Rule("cookie_header", re.compile(r"(?i)(?P<head>\b(?:set-)?cookie\\?\"?\s*:\s*\\?\"?)[^\s\\\"'][^\\\"'\n]*"),
         _keep_prefix("head", "cookie_header"), needs=("cookie",)),
    Rule("url_password", re.compile(r"(?i)(?P<head>\b[a-z][a-z0-9+.-]{1,20}:\\?/\\?/[^/\s:@\"']{0,256}:)[^/\s\"']{1,256}(?=@)"),
         _keep_prefix("head", "url_password"), needs=(":/", ":\\/")),
    Rule("aws_access_key", re.compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b"),
         lambda m: mark("aws_access_key"), needs=("akia", "asia", "a3t", "abia", "acca", "agpa", "aida", "aroa", "aipa", "anpa", "anva", "apka")),
    Rule("gcp_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![\w-])|\bya29\.[0-9A-Za-z_-]{20,}|\bGOCSPX-[A-Za-z0-9_-]{28}\b"),
         lambda m: mark("gcp_key"), needs=("aiza", "ya29", "gocspx")),
    Rule("azure_key", re.compile(r"(?i)(?P<head>\b(?:AccountKey|SharedAccessKey|sig)=)[A-Za-z0-9%+/]{20,}={0,2}"),
         _keep_prefix("head", "azure_key"), needs=("accountkey", "sharedaccesskey", "sig=")),
    Rule("azure_key", re.compile(r"(?<![\w~.-])[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![\w~.-])"),
         lambda m: mark("azure_key"), needs=("q~",)),
    Rule("vendor_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abposr]-[A-Za-z0-9-]{10,}"
                                    r"|glpat-[A-Za-z0-9_-]{20,}|sk-(?:proj-)?[A-Za-z0-9_-]{20,}|[sr]k_live_[A-Za-z0-9]{20,})"),
         lambda m: mark("vendor_token"), needs=("gh", "xox", "glpat-", "sk-", "k_live_")),
    # <password>x</password>, <ns:Password xsi:type="...">x<, <entry key="db.password">x< (SOAP and XML
    # configuration logged by Java services); the value to the next tag (or a cut at the end).
    Rule("xml_element", re.compile(r"(?i)(?P<head><(?:[\w.-]+:)?(?P<name>[\w.-]*(?:" + _STRONG + r")[\w.-]*)(?:\s[^<>]{0,200})?>"
                                   r"|<[\w:.-]+\s+(?:key|name)=\"(?P<attr>[^\"<>]{0,100}(?:" + _STRONG + r")[^\"<>]{0,40})\"\s*>)"
                                   r"(?P<val>[^<\n]{1,4096})(?=<|" + _END + ")"), _xml_value, needs=("<",)),
    # SQL that sets a password: ALTER ROLE x PASSWORD 'y', IDENTIFIED BY 'y', PASSWORD('y') (PostgreSQL
    # logs the statement of a failed or logged query as it was sent).
    Rule("sql_password", re.compile(r"(?i)(?P<head>\b(?:password|identified\s+by)\s*\(?\s*')(?P<val>(?:[^'\n]|'')+)(?='|" + _END + ")"),
         _keep_prefix("head", "sql_password"), needs=("password", "identified")),
    # A password typed at sshd's login prompt as the user name is logged as an invalid user: taken
    # when it reads like a password (8+ characters, upper and lower case and a digit), not a login.
    Rule("invalid_user", re.compile(r"(?P<head>\b[Ii]nvalid user )(?P<val>(?=\S*[a-z])(?=\S*[A-Z])(?=\S*\d)\S{8,})"
                                    r"(?= from | port |" + _END + ")"), _keep_prefix("head", "invalid_user"), needs=("nvalid user ",)),
    # mysql -pSECRET / mysql -p SECRET, sshpass -p, redis-cli -a: -p is a port elsewhere (ssh, psql).
    Rule("cmdline_password", re.compile(r"(?P<head>\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mariadb|mariadb-dump"
                                        r"|mongo|mongosh|mongodump|mongorestore|sshpass)\b[^\n|;&]{0,200}?"
                                        r"\s-p\s?)(?P<val>[^\s\-][^\s]*)"), _short_flag, needs=("mysql", "mariadb", "mongo", "sshpass")),
    # curl -u user:pass / curl --user user:pass
    Rule("cmdline_password", re.compile(r"(?P<head>\bcurl\b[^\n|;&]{0,200}?\s(?:-u\s?|--user[=\s])[^\s:\"']*:)"
                                        r"(?P<val>[^\s\"']+)"), _short_flag, needs=("curl",)),
    Rule("cmdline_password", re.compile(r"(?P<head>\bredis-cli\b[^\n|;&]{0,200}?\s-a\s?)(?P<val>[^\s\-][^\s]*)"),
         _short_flag, needs=("redis-cli",)),
    # smbclient -U user%pass, ldapsearch/ldapmodify... -w pass, docker/podman login -p pass
    Rule("cmdline_password", re.compile(r"(?P<head>\bsmbclient\b[^\n|;&]{0,200}?\s(?:-U\s?|--user[=\s])[^\s%\"']*%)"
                                        r"(?P<val>[^\s\"']+)"), _short_flag, needs=("smbclient",)),
    Rule("cmdline_password", re.compile(r"(?P<head>\bldap[a-z]*\b[^\n|;&]{0,200}?\s-w\s?)(?P<val>[^\s\-][^\s]*)"),
         _short_flag, needs=("ldap",)),
    Rule("cmdline_password", re.compile(r"(?P<head>\b(?:docker|podman|nerdctl|buildah|skopeo)\b[^\n|;&]{0,40}?\slogin\b"
                                        r"[^\n|;&]{0,200}?\s-p\s?)(?P<val>[^\s\-][^\s]*)"), _short_flag, needs=("login",)),
    # --password=x, --token x, --api-key=x, --db-password x (a --password-file is a path and stays;
    # --no-password, --ask-pass are switches: what follows them is not a value).
    Rule("cmdline_password", re.compile(r"(?i)(?P<head>(?<![\w-])--?(?!no-|ask-|prompt-)(?:[A-Za-z0-9]+[_-]){0,4}"
                                        r"(?:" + _STRONG + r")(?:=|\s+))(?P<val>[^\s\"']+)"),
         lambda m: None if _PLACEHOLDER.match(m.group("val")) or m.group("val").startswith(("[REDACTED", "-"))
         else m.group("head") + mark("cmdline_password")),
    # password: |  (a YAML block scalar: the value is the more-indented lines below; k8s and Ansible)
    Rule("keyword", re.compile(r"(?im)(?P<head>^(?P<ind>[ \t]*)(?P<name>" + _PRE + r"(?:" + _STRONG + r")" + _SUF + r")"
                               r"[ \t]*:[ \t]*[|>][+-]?\d?[ \t]*\n)(?:(?P=ind)[ \t]+\S[^\n]*(?:\n|\Z))+"),
         lambda m: None if _NOT_SECRET_NAME.search(m.group("name").rstrip("_-"))
         else m.group("head") + m.group("ind") + "  " + mark("keyword") + "\n"),
    # password = two words  (config text: the rest of the line)
    Rule("keyword", re.compile(r"(?im)(?P<head>^[ \t]*(?P<name>" + _PRE + r"(?:" + _STRONG + r")" + _SUF + r")[ \t]*[:=][ \t]*)"
                               r"(?P<val>\S[^\n]*?)[ \t]*$"), _config_line),
    Rule("keyword", _kw_rx(_STRONG), _keyword(True, "keyword")),
    Rule("high_entropy", _kw_rx(_WEAK), _keyword(False, "high_entropy")),
)


# Where a string ends, a length cap may have cut it (_END: the end, or the sanitiser's mark there): a cmdline read stops at 4096 bytes, journal
# messages at 8192 and 2048 characters, templates at 300, the sanitiser's at 4096 ("…[+N chars]"),
# a capture store's titles at 200 (written by whatever version ran then), MAX_TEXT here. The rules
# above need a whole token (AKIA + 16, ghp_ + 36, user:pass@), so what a cut kept of one would leave
# as it is: these take the start of a secret when it is the last thing in the string.
TAIL_CHARS = 4096    # how far before the end a cut token may start (a JWT runs to a few KB)


def _tail_start(s: str) -> int:
    """Where the last three words begin (the tail rules match within `name = value`), at most
    TAIL_CHARS before the end: scanning only there keeps the tail rules cheap."""
    k = s.rfind("…[+") if s.endswith(" chars]") else len(s)
    for _ in range(3):
        k = max(s.rfind(" ", 0, k), s.rfind("\n", 0, k), s.rfind("\t", 0, k))
        if k <= 0:
            return 0 if len(s) <= TAIL_CHARS else len(s) - TAIL_CHARS
    return max(k, len(s) - TAIL_CHARS)


_STRONG_RX = re.compile(r"(?i)(?:" + _STRONG + r")")


def _keyword_tail(m: re.Match) -> str | None:
    """`password: "abc` (the cut fell before the closing quote), or a `session_key=` value cut
    short of looks_random's 16 characters (letters and digits, 8 or more)."""
    name, val = m.group("name"), m.group("qv") or m.group("bv") or ""
    if not val or val.startswith("[REDACTED") or _PLACEHOLDER.match(val) or _NOT_SECRET_NAME.search(name.rstrip("_-")):
        return None
    if not _STRONG_RX.search(name) and (len(val) < 8 or val.startswith("/") or not re.search(r"[A-Za-z]", val)
                                        or not re.search(r"\d", val)):
        return None
    return name + m.group("sep") + (m.group("q") or "") + mark("cut_secret")


TAIL: tuple[Rule, ...] = (
    Rule("cut_secret", re.compile(r"(?:\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{1,16}"
                                  r"|\bAIza[0-9A-Za-z_-]+|\bya29\.[0-9A-Za-z_-]+|\bGOCSPX-[A-Za-z0-9_-]+|\bgh[pousr]_[A-Za-z0-9]+"
                                  r"|\bgithub_pat_\w+|\bxox[abposr]-[A-Za-z0-9-]+|\bglpat-[\w-]+"
                                  r"|\bsk-(?:proj-)?(?=[\w-]*\d)(?=[\w-]*[a-z])(?=[\w-]*[A-Z])[\w-]{6,}"
                                  r"|\b[sr]k_live_\w+|\beyJ[\w.-]+|(?<![\w~.-])[A-Za-z0-9_~.-]{3}\dQ~[\w~.-]+)" + _END),
         lambda m: mark("cut_secret")),
    # scheme://user:pass cut before its @ (not host:port: a port is digits)
    Rule("cut_secret", re.compile(r"(?i)(?P<head>\b[a-z][a-z0-9+.-]{1,20}:\\?/\\?/[^/\s:@\"'\[\]]{0,256}:)(?!\d{1,5}" + _END + r")"
                                  r"[^/\s\"'@]+" + _END), _keep_prefix("head", "cut_secret")),
    Rule("cut_secret", re.compile(r"(?i)(?P<head>\b(?:AccountKey|SharedAccessKey|sig)=)(?!\[REDACTED)[A-Za-z0-9%+/]+=*" + _END),
         _keep_prefix("head", "cut_secret")),
    Rule("cut_secret", re.compile(r"(?i)" + _NAME + r"(?P<name>" + _PRE + r"(?:" + _STRONG + "|" + _WEAK + r")" + _SUF + r")"
                                  r"(?P<sep>\\?\"?'?\s*[:=]\s*)(?:(?P<q>\\?[\"'])(?P<qv>[^\"'\\\n]+)|(?P<bv>[^\s\"',;&}\]\)]+))"
                                  + _END), _keyword_tail),
)


# An audit record's command line: proctitle= (NUL-separated argv) and EXECVE's a0= a1=..., each
# hex-encoded when it holds a space, a quote or a control character, else quoted: `-pSECRET` in hex
# or as a3="-pSECRET" matched no rule.
_AUDIT_HEAD = re.compile(r"\b(?:proctitle|a0)=")
_AUDIT_ARG = re.compile(r'\b(?:proctitle|a\d{1,5})=(?:"(?P<q>[^"]*)(?:"|\Z)|(?P<hex>[0-9A-Fa-f]+)\b)')


def _audit_argv(s: str, start: int) -> str:
    args = []
    for m in _AUDIT_ARG.finditer(s, start):
        if m.group("q") is not None:
            args.append(m.group("q"))
        else:
            h = m.group("hex")
            args.append(bytes.fromhex(h[:len(h) // 2 * 2]).replace(b"\0", b" ").decode("utf-8", "backslashreplace"))
    return " ".join(args)


_CUT_MARK = re.compile(r"…?\[\+\d+ chars\]")
_AT = "\ue040"             # a private-use character: what %40 decodes to while rules match
_AT_Q = quote(_AT)
# A run starts only after a separator: unanchored, each failed start re-scanned the rest of the
# run (quadratic: 40k characters without a %XX took 2 s, the 1 MiB MAX_TEXT about 27 minutes).
_PCT = re.compile(r"(?<![^\s\[\],=\"'&?])[^\s\[\],=\"'&?]*%[0-9A-Fa-f]{2}[^\s\[\],\"'&?]*")


def _valid_utf8_pct(raw: str) -> bool:
    try:
        unquote(raw, errors="strict")
        return True
    except UnicodeDecodeError:
        return False


@dataclass
class Redactor:
    """Apply the rules to strings; `counts` is {rule: n} of redactions made (never the secrets)."""

    enabled: bool = True
    user: list[Rule] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    config_source: str | None = None        # which user pattern file was read, for the manifest
    config_errors: list[str] = field(default_factory=list)
    # whole strings replaced as they are, before any rule: folded templates (see contents.refold)
    exact: dict[str, str] = field(default_factory=dict)

    def text(self, s: str) -> str:
        if not self.enabled or not s:
            return s
        if s in self.exact:
            return self.exact[s]
        if len(s) > MAX_TEXT:
            s = s[:MAX_TEXT]
        # The sanitiser escaped a multi-line string's newlines (and tabs) before it got here, gluing
        # each line's first word to the last one's: `\x0apassword = two words` matched no rule.
        esc = [(e, c) for e, c in (("\\x0a", "\n"), ("\\x09", "\t")) if e in s and c not in s]
        for e, c in esc:
            s = s.replace(e, c)
        if "%" in s:    # series keys and URLs percent-encode: db_password%3Dx hid from every rule
            s = _PCT.sub(self._encoded, s)
        if "proctitle=" in s or "a0=" in s:
            s = self._audit(s)
        s = self._plain(s, tail=True)
        for e, c in esc:
            s = s.replace(c, e)
        return s

    def _audit(self, s: str) -> str:
        """An audit record whose decoded command line holds a secret: the arguments are replaced by
        that command line redacted, escaped like any host text (decoded hex can hold control bytes)."""
        m = _AUDIT_HEAD.search(s)
        if not m:
            return s
        argv = _audit_argv(s, m.start())
        red = self._plain(argv, tail=True)
        return s if red == argv else s[:m.start()] + 'cmdline="' + clean(red) + '"'

    def _encoded(self, m: re.Match) -> str:
        raw = m.group(0)
        # In a URL written plainly, %40 is part of the userinfo: it stays one non-@ character, else
        # `user:Pw%40rest@host` read as password `Pw`, host `rest@host` (and a cut after the %40 left
        # `rest` looking like a host). A URL encoded whole (https%3A%2F%2F...) decodes it to @.
        at = raw.replace("%40", _AT) if "://" in raw or ":\\/\\/" in raw else raw
        dec = unquote(at, errors="strict") if _valid_utf8_pct(raw) else raw
        if dec == raw:
            return raw
        rest = m.string[m.end():]     # the piece ends the string: it may have been cut
        red = self._plain(dec, tail=not rest or _CUT_MARK.fullmatch(rest) is not None)
        return raw if red == dec else quote(red, safe="/ :@+-._~").replace(_AT_Q, "%40")

    def _plain(self, s: str, tail: bool = False) -> str:
        low = s.lower()
        gated = _TRIGGER.search(low) is not None
        for r in BUILTIN if gated else ():
            if not r.needs or any(w in low for w in r.needs):
                s = self._apply(r, s)
        if gated and tail:
            i = _tail_start(s)
            for r in TAIL:
                s = s[:i] + self._apply(r, s[i:])
        for r in self.user:
            s = self._apply(r, s)
        return s

    def _apply(self, r: Rule, s: str) -> str:
        n = 0

        def sub(m: re.Match) -> str:
            nonlocal n
            out = r.repl(m) if callable(r.repl) else r.repl
            if out is None:
                return m.group(0)
            n += 1
            return out
        try:
            s2 = r.rx.sub(sub, s, timeout=r.timeout) if r.timeout else r.rx.sub(sub, s)
        except TimeoutError:
            # Fail closed: what the pattern did not finish reading may hold what it is there for.
            self.counts[r.name + ":timed_out"] += 1
            return mark(r.name)
        if n:
            self.counts[r.name] += n
        return s2

    def deep(self, obj):
        """Redact every string (and string dict key) of a JSON-like value or dataclass tree.
        Dataclass instances are updated in place and returned."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {(self.text(k) if isinstance(k, str) else k): self.deep(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.deep(x) for x in obj) if isinstance(obj, list) else tuple(self.deep(x) for x in obj)
        if is_dataclass(obj) and not isinstance(obj, type):
            for f in fields(obj):
                try:
                    setattr(obj, f.name, self.deep(getattr(obj, f.name)))
                except AttributeError:   # frozen: leave it (no frozen dataclass holds host text)
                    pass
            return obj
        return obj


def user_rules(path: str) -> tuple[list[Rule], list[str]]:
    """Patterns from a TOML file:  [[pattern]] name = "ticket_ids"  regex = "TCK-\\d{6}".
    A named group `secret` limits the redaction to that part. Bad entries become errors."""
    from hostdiag import catalog

    rules: list[Rule] = []
    errors: list[str] = []
    unbounded = False
    try:
        with open(path, "rb") as f:
            doc = tomllib.loads(f.read(1 << 20).decode("utf-8", "replace"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        return [], [f"{path}: {e}"]
    items = doc.get("pattern") or []
    if not isinstance(items, list):
        return [], [f"{path}: 'pattern' must be an array of tables ([[pattern]])"]
    for i, item in enumerate(items[:MAX_USER_PATTERNS]):
        if not isinstance(item, dict) or not isinstance(item.get("regex"), str):
            errors.append(f"{path}: pattern {i + 1}: needs a 'regex' string")
            continue
        name = re.sub(r"[^\w.-]", "_", str(item.get("name") or f"user_{i + 1}"))[:40]
        src = item["regex"]
        if len(src) > MAX_PATTERN_CHARS:
            errors.append(f"{path}: pattern {name}: longer than {MAX_PATTERN_CHARS} characters")
            continue
        try:
            rx = re.compile(src)
        except re.error as e:
            errors.append(f"{path}: pattern {name}: {e}")
            continue
        # Every string of the bundle goes through every user pattern: one that backtracks
        # exponentially would stall it on one long line. Such a pattern is refused (saying why);
        # any other with an unbounded repeat runs on the `regex` engine with USER_TIMEOUT_S.
        why = catalog.pattern_problem(src)
        if why:
            errors.append(f"{path}: pattern {name}: not used: {why} can take forever on one long line; rewrite it")
            continue
        timeout = None
        if not catalog.bounded(src):
            try:
                rx, timeout = catalog.compile_pattern(src), USER_TIMEOUT_S
            except Exception as e:  # noqa: BLE001 - regex.error and its internal errors on odd syntax
                errors.append(f"{path}: pattern {name}: {e}")
                continue
            if isinstance(rx, re.Pattern):    # no `regex` package: said once, below
                timeout = None
                unbounded = True
        label = "user:" + name
        if "secret" in rx.groupindex:
            def repl(m, label=label):
                a, b = m.span("secret")
                if a < 0:
                    return None
                s0 = m.start()
                return m.group(0)[:a - s0] + mark(label) + m.group(0)[b - s0:]
        else:
            def repl(m, label=label):
                return mark(label)
        rules.append(Rule(label, rx, repl, gated=False, timeout=timeout))
    if unbounded:
        errors.append(f"{path}: {catalog.regex_engine()}")
    if len(items) > MAX_USER_PATTERNS:
        errors.append(f"{path}: only the first {MAX_USER_PATTERNS} patterns are used")
    return rules, errors


def make(enabled: bool = True, config: str | None = None) -> Redactor:
    """A Redactor with the built-in rules plus user patterns from `config` (an explicit path that
    must exist) or /etc/hostdiag/redact.toml when present."""
    r = Redactor(enabled=enabled)
    path = config or (DEFAULT_CONFIG if os.path.isfile(DEFAULT_CONFIG) else None)
    if path and enabled:
        r.user, r.config_errors = user_rules(path)
        r.config_source = path
    return r
