"""Redaction rules on a corpus of real-looking secrets, and hypothesis variants of each shape."""
from __future__ import annotations

import os
import re
import string
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))
import secret_corpus as corpus  # noqa: E402

from hostdiag.bundle import redact  # noqa: E402
from hostdiag.core.sanitize import clean  # noqa: E402
from hostdiag.logs import template  # noqa: E402


@pytest.mark.parametrize("text,secrets,keep", corpus.ALL, ids=[c[0][:40] for c in corpus.ALL])
def test_corpus(text, secrets, keep):
    r = redact.make(config=None)
    out = r.text(text)
    for s in secrets:
        assert s not in out, f"secret survived: {out!r}"
    for k in keep:
        assert k in out, f"ordinary text lost: {k!r} not in {out!r}"
    assert sum(r.counts.values()) >= (1 if secrets else 0)
    if not secrets:
        assert out == text and not r.counts


def test_counts_never_hold_the_secret():
    r = redact.make()
    for text, _, _ in corpus.ALL:
        r.text(text)
    dumped = repr(dict(r.counts))
    for _, secrets, _ in corpus.ALL:
        for s in secrets:
            assert s not in dumped
    assert {"aws_access_key", "jwt", "private_key", "url_password", "auth_header", "cookie_header",
            "cmdline_password", "keyword", "gcp_key", "azure_key"} <= set(r.counts)


def test_disabled_keeps_everything():
    r = redact.make(enabled=False)
    for text, _, _ in corpus.ALL:
        assert r.text(text) == text
    assert not r.counts


def test_user_patterns(tmp_path):
    cfg = tmp_path / "redact.toml"
    cfg.write_text('[[pattern]]\nname = "ticket"\nregex = "TCK-\\\\d{6}"\n'
                   '[[pattern]]\nname = "employee"\nregex = "emp=(?P<secret>E\\\\d{5})"\n'
                   '[[pattern]]\nname = "broken"\nregex = "("\n')
    r = redact.make(config=str(cfg))
    out = r.text("see TCK-123456 for emp=E12345 pid=77 port=22")
    assert "TCK-123456" not in out and "E12345" not in out
    assert "emp=[REDACTED:user:employee]" in out and "pid=77 port=22" in out
    assert r.counts == {"user:ticket": 1, "user:employee": 1}
    assert any("broken" in e for e in r.config_errors)


def test_deep_walks_dataclasses_and_dicts():
    from hostdiag.core.model import Finding

    f = Finding("x.y", "processes", "info", "t", evidence={"cmdline": "app --password=Zx9Qw2Lm7"},
                stabilize=["mysql -pHunter2Zq ok"])
    r = redact.make()
    r.deep(f)
    assert "Zx9Qw2Lm7" not in str(f) and "Hunter2Zq" not in str(f)
    assert f.id == "x.y" and r.counts["cmdline_password"] == 2


# ---------------------------------------------------------------- hypothesis variants

_secret = st.text(string.ascii_letters + string.digits, min_size=10, max_size=40).filter(
    lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s))
_word = st.sampled_from(["worker", "started", "pid=4242", "port 8080", "/var/log/app.log", "10.0.0.1:5432",
                         "ok", "request", "user=bob", "in 33ms"])
_names = st.sampled_from(["password", "passwd", "db_password", "DB_PASSWORD", "dbPassword", "secret", "api_key",
                          "X-Api-Key", "apiKey", "access_token", "token", "client_secret", "aws_secret_access_key"])


@settings(max_examples=200, deadline=None)
@given(_names, st.sampled_from(["=", ": ", " = ", "=\"", ":'"]), _secret, st.lists(_word, max_size=4),
       st.lists(_word, max_size=4))
def test_keyword_values_redacted(name, sep, secret, before, after):
    close = '"' if sep.endswith('"') else "'" if sep.endswith("'") else ""
    text = " ".join([*before, f"{name}{sep}{secret}{close}", *after])
    out = redact.make().text(text)
    assert secret not in out, out
    # Config style `password: x y` / `password = x y` (unquoted, spaced): the rest of the line is the value.
    rest_is_value = sep in (": ", " = ")
    for w in before + ([] if rest_is_value else after):
        assert w in out


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["--password", "--passwd", "--token", "--api-key", "--secret", "--client-secret"]),
       st.sampled_from(["=", " "]), _secret, st.integers(1, 65535), st.integers(1, 4_000_000))
def test_cmdline_flags_redacted_ports_pids_kept(flag, sep, secret, port, pid):
    text = f"/usr/local/bin/svc --port {port} {flag}{sep}{secret} --pid-file /run/svc/{pid}.pid"
    out = redact.make().text(text)
    assert secret not in out
    assert f"--port {port}" in out and f"/run/svc/{pid}.pid" in out


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["postgres", "mysql", "redis", "amqp", "https", "mongodb+srv"]),
       st.from_regex(r"[a-z][a-z0-9_]{2,10}", fullmatch=True), _secret,
       st.from_regex(r"[a-z0-9]{2,8}\.internal", fullmatch=True), st.integers(1, 65535))
def test_url_passwords_redacted(scheme, user, secret, host, port):
    out = redact.make().text(f"connect {scheme}://{user}:{secret}@{host}:{port}/db failed")
    assert secret not in out
    assert f"{scheme}://{user}:" in out and f"@{host}:{port}/db failed" in out


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["AKIA", "ASIA", "AROA"]), st.from_regex(r"[A-Z0-9]{16}", fullmatch=True),
       st.from_regex(r"[A-Za-z0-9_-]{35}", fullmatch=True), st.from_regex(r"[A-Za-z0-9_-]{10,40}", fullmatch=True))
def test_cloud_and_jwt_shapes(prefix, body, gcp, sig):
    r = redact.make()
    aws, key = prefix + body, "AIza" + gcp
    jwt = f"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4eXoifQ.{sig}"
    out = r.text(f"id {aws} and gkey {key} bearer-less {jwt} on port 443")
    assert aws not in out and key not in out and jwt not in out
    assert "on port 443" in out


_plain = st.text(string.ascii_lowercase + string.digits + " /.:-_()[],=", max_size=120).filter(
    lambda s: not re.search(r"pass|pwd|secret|token|key|auth|cred|sig|sess|salt|nonce|bearer|cookie|jwt|hmac|://"
                            r"|mysql|maria|mongo|sshpass|redis", s))


@settings(max_examples=300, deadline=None)
@given(_plain)
def test_ordinary_text_untouched(s):
    r = redact.make()
    assert r.text(s) == s and not r.counts


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4_000_000), st.integers(1, 65535), st.from_regex(r"(/[a-z0-9._-]{1,12}){1,5}", fullmatch=True))
def test_pids_ports_paths_next_to_secrets(pid, port, path):
    text = f"[{pid}] listening on :{port} root={path} password=Qz8Wm2Xk7Lp"
    out = redact.make().text(text)
    assert "Qz8Wm2Xk7Lp" not in out
    assert out.startswith(f"[{pid}] listening on :{port} root={path} password=")


@pytest.mark.parametrize("text, secret, keep", [
    # series keys percent-encode label values: a mount path once reached snapshot.json intact
    ("disk.used_bytes[mount=/tmp/m/db_password%3DMountPw5ecret99]", "MountPw5ecret99", "disk.used_bytes[mount=/tmp/m/"),
    ("GET /login?user=bob&password%3DQw8Zx2Lm9 200", "Qw8Zx2Lm9", "GET /login?user=bob"),
    # an environment-like assignment in a cmdline (exec -a, or sh -c "PGPASSWORD=... psql")
    ("worker PGPASSWORD=EnvPw5ecret77 --threads 4", "EnvPw5ecret77", "--threads 4"),
    ("sh -c ROOTPWD=Rt7Pw2Qz9 ./init", "Rt7Pw2Qz9", "./init"),
    ("curl -s -u admin:CurlPw5ecret https://api.example/v1", "CurlPw5ecret", "https://api.example/v1"),
    ("curl --user=admin:CurlPw5ecret https://api.example/v1", "CurlPw5ecret", "https://api.example/v1"),
])
def test_places_the_rules_once_missed(text, secret, keep):
    r = redact.make()
    out = r.text(text)
    assert secret not in out and keep in out, out


@pytest.mark.parametrize("s", ["BYPASS=1", "100%25 done", "GET /a%20b?x=1 200", "disk.used_bytes[mount=/srv/caf%C3%A9]",
                               "curl -u admin https://x", "bad %ZZ escape %C3"])
def test_encoded_and_glued_text_untouched(s):
    assert redact.make().text(s) == s


# ---------------------------------------------------------------- cuts and the sanitiser

def _frags(s: str, n: int = 8) -> list[str]:
    return [s[i:i + n] for i in range(len(s) - n + 1)]


# Not the PEM body line: logged on its own (64 characters), no cap (200 and up) falls inside it, and
# its start alone is indistinguishable from other text.
_CUT_CASES = [(t, s) for t, secrets, _ in corpus.ALL for s in secrets if len(s) >= 10 and "\n" not in s
              and s in t and t != corpus.PEM_BODY]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_CUT_CASES), st.lists(_word, max_size=4), st.integers(8, 120), st.booleans())
def test_no_fragment_of_a_cut_secret_survives(case, before, keep, marker):
    """A length cap (a 4096-byte cmdline read, journal lines at 8192/2048, templates at 300, the
    sanitiser's `…[+N chars]`, a store's 200-character titles) can fall anywhere in a secret: what
    it kept (8+ characters) must not survive redaction, nor the template folded from the result."""
    text, secret = case
    line = " ".join([*before, text])
    i = line.index(secret)
    p = i + min(keep, len(secret))
    cut = line[:p] + (f"…[+{len(line) - p} chars]" if marker else "")
    out = redact.make().text(cut)
    kept = _frags(secret[:p - i])
    assert not [f for f in kept if f in out], out
    assert not [f for f in kept if f in template(out)]


@pytest.mark.parametrize("text,secrets,keep", corpus.ALL, ids=[c[0][:40] for c in corpus.ALL])
def test_corpus_after_the_sanitiser(text, secrets, keep):
    """Report text is sanitised (hostdiag/core/sanitize.clean) before the bundle redacts it: a
    multi-line value arrives as one line of `\\x0a`, which glued `password` to the word before."""
    out = redact.make().text(clean(text))
    for s in secrets:
        for f in _frags(s, min(12, len(s))):
            assert f not in out, f"fragment of {s!r} survived: {out!r}"
    for k in keep:
        assert clean(k) in out


@pytest.mark.parametrize("s", ["connect http://db01.internal:5432", "listening on https://[::1]:8443",
                               "GET http://cache01:11211…[+40 chars]", "nonce=42", "key=vda1", "session 12 of user bob",
                               "cookie=/var/lib/app/c1"])
def test_ordinary_string_ends_untouched(s):
    """The cut rules act only on the start of a secret at a string's end: a host:port, a short value stay."""
    r = redact.make()
    assert r.text(s) == s and not r.counts


@pytest.mark.parametrize("text, secret, keep", [
    # a name no longer starts after a dot (that made `a.a.a...` quadratic): the prefix takes the dots
    ("app.config.dbPassword=Dt9Qw2Zx7Lm", "Dt9Qw2Zx7Lm", "app.config.dbPassword="),
    ("svc.ROOTPASSWORD=Rt4Qw8Zx2Lm", "Rt4Qw8Zx2Lm", "svc.ROOTPASSWORD="),
    ("-Dspring.datasource.password=Sp7Qw2Zx9Lm x", "Sp7Qw2Zx9Lm", "-Dspring.datasource.password="),
    ("a.b.session_key=Ab3dEf9hIj2kLm4nOp done", "Ab3dEf9hIj2kLm4nOp", "a.b.session_key="),
    # a PEM body line among blank lines (the rule no longer runs \s* across newlines)
    ("\n\n" + corpus.PEM_BODY + "\r\n\n", corpus.PEM_BODY, "\n\n"),
])
def test_dotted_names_and_blank_lines(text, secret, keep):
    out = redact.make().text(text)
    assert secret not in out and keep in out, out


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab%3D=&? ,[]\"'x%41\t", max_size=60))
def test_percent_runs_anchored_at_separators_match_the_plain_pattern(s):
    """_PCT starts a run only after a separator (the unanchored form was quadratic): it must
    find exactly the spans the unanchored pattern finds."""
    import re

    plain = re.compile(r"[^\s\[\],=\"'&?]*%[0-9A-Fa-f]{2}[^\s\[\],\"'&?]*")
    assert [m.span() for m in redact._PCT.finditer(s)] == [m.span() for m in plain.finditer(s)]
