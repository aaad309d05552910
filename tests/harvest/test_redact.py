"""Redaction: every planted kind of secret and PII is replaced, ordinary code is left alone."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import pytest

from bench.secret_corpus import planted
from tailor.redaction.redact import redact
from tailor.stages.harvest.notebooks import code_cells
from tests.harvest.planted import SECRETS, secrets_module


def test_every_planted_secret_is_replaced_and_counted_by_kind() -> None:
    result = redact(secrets_module(), path="pay/settings.py", language="Python")
    assert [kind for kind, value in SECRETS.items() if value in result.text] == []
    assert len(result.counts) >= 20
    assert result.counts["github_token"] == 1 and result.counts["email"] == 1
    assert 'AWS_ACCESS_KEY_ID = "<API_KEY>"' in result.text
    assert "postgresql://payments:<PASSWORD>@db.internal:5432/payments" in result.text
    assert 'DEPLOY_KEY = """<PRIVATE_KEY>"""' in result.text


def test_config_files_have_bare_values_redacted() -> None:
    text = "database:\n  password: hunter2hunter2\n  host: db.internal\n"
    result = redact(text, path="deploy/values.yaml", language="YAML")
    assert "hunter2hunter2" not in result.text and "db.internal" in result.text


def test_ordinary_code_is_left_as_it_is() -> None:
    code = (
        "import os\n\n"
        "def lookup(table: dict[str, int], key: str) -> int:\n"
        '    """Value of key, or -1."""\n'
        "    token = key.strip()\n"
        '    password_field = "password"\n'
        '    url = "https://example.com/api/v1/items"\n'
        '    version = "1.2.3.4"\n'
        "    return table.get(token, -1)\n"
    )
    result = redact(code, path="a.py", language="Python")
    assert result.text == code and not result.counts


def test_loopback_and_documentation_addresses_are_not_pii() -> None:
    text = 'HOST = "127.0.0.1"\nCONTACT = "someone@example.com"\n'
    assert redact(text, path="a.py", language="Python").text == text


# --- issue 16: what the reviewer measured -----------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["jane.doe@acme.systems", "ops@corp.internal", "li_wei@mail.globex.consulting"],
)
def test_emails_on_any_domain_are_redacted(address: str) -> None:
    result = redact(f'CONTACT = "{address}"\n', path="a.py", language="Python")
    assert result.text == 'CONTACT = "<EMAIL>"\n'


@pytest.mark.parametrize(
    "value",
    ["dinsdale@test.example.com", "ci@build.example", "x@svc.test", "192.0.2.10", "2001:db8::1"],
)
def test_documentation_reserved_names_and_addresses_stay(value: str) -> None:
    text = f'EXAMPLE = "{value}"\n'
    assert redact(text, path="a.py", language="Python").text == text


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("mysql --password Hunt3r2pass -u root", "Hunt3r2pass"),
        ("curl -u admin:Hunt3r2pass https://api.acme.io/v1/items", "Hunt3r2pass"),
        ("./bin/deploy --api-token Uqxh4raeBe7Us4BaZlNkRNeVe_GAb", "Uqxh4raeBe7Us4BaZlNkRNeVe_GAb"),
        (
            "docker run -e AZURE_STORAGE_KEY=rOgiX/qbDWQSuUiKlpxHI5 acme/api",
            "rOgiX/qbDWQSuUiKlpxHI5",
        ),
    ],
)
def test_credentials_given_to_command_line_tools_are_redacted(line: str, secret: str) -> None:
    result = redact(line + "\n", path="scripts/deploy.sh", language="Shell")
    assert secret not in result.text


@pytest.mark.parametrize(
    ("path", "language", "code"),
    [
        ("a.py", "Python", 'resp = requests.get(url, auth=("admin", "Hunt3r2pass"))'),
        ("a.py", "Python", 'session.auth = HTTPBasicAuth("admin", "Hunt3r2pass")'),
        ("a.go", "Go", 'req.SetBasicAuth("admin", "Hunt3r2pass")'),
        (
            "a.js",
            "JavaScript",
            "fetch(u, {headers: {Authorization: 'Bearer Hunt3r2pass__x.Y-z9'}})",
        ),
        ("a.py", "Python", 'REDIS = "redis://:Hunt3r2pass@cache:6379/0"'),
    ],
)
def test_credentials_in_http_client_calls_and_urls_are_redacted(
    path: str, language: str, code: str
) -> None:
    result = redact(code + "\n", path=path, language=language)
    assert "Hunt3r2pass" not in result.text


@pytest.mark.parametrize(
    ("path", "language", "text"),
    [
        ("a.py", "Python", 'DB_PASSWORD = "$3cr3t!x9"\n'),
        ("a.py", "Python", 'DB_PASSWORD = "(3cr3t!x9"\n'),
        ("config/app.yaml", "YAML", "password: '*3cr3t!x9'\n"),
        ("a.py", "Python", 'DATABASE_URL = "postgresql://app:%3cr3t!x9@db/app"\n'),
    ],
)
def test_secrets_starting_like_template_syntax_are_secrets(
    path: str, language: str, text: str
) -> None:
    assert "3cr3t!x9" not in redact(text, path=path, language=language).text


@pytest.mark.parametrize(
    "value",
    [
        "${DB_PASSWORD}",
        "$DB_PASSWORD",
        "{{ vault_db_password }}",
        "%(password)s",
        "<your-password>",
    ],
)
def test_templates_and_references_are_kept(value: str) -> None:
    assignment = f'DB_PASSWORD = "{value}"\n'
    url = f"DATABASE_URL = 'postgresql://app:{value}@db/app'\n"
    for text in (assignment, url):
        assert redact(text, path="a.py", language="Python").text == text


@pytest.mark.parametrize(
    ("path", "language", "text"),
    [
        (
            "tests/test_io.py",
            "Python",
            '@mark.parametrize("e", [1], ids=["PYTHONIOENCODING=utf8"])\n',
        ),
        ("tests/test_io.py", "Python", 'env = ["PYTHONIOENCODING=utf8", "LC_ALL=C.UTF-8"]\n'),
        ("scripts/run.sh", "Shell", "SECRET_KEY_FILE=/run/secrets/django_key ./manage.py check\n"),
        ("a.py", "Python", 'tokenizer = "bert-base-uncased-v2"\n'),
        ("a.py", "Python", 'CACHE_KEY = "user_profile_v2_by_id_1234"\n'),
        ("a.py", "Python", 'password_prompt = "Enter the password for the account:"\n'),
        ("a.py", "Python", '    """Proxy.\n\n    password : Union[str, None]\n    """\n'),
        (
            "fim.py",
            "Python",
            'FIM_TOKEN = "<|fim_prefix|>"\npad_token = "<|reserved_special_token_6|>"\n',
        ),
    ],
)
def test_names_and_values_that_only_look_secret_are_left_alone(
    path: str, language: str, text: str
) -> None:
    assert redact(text, path=path, language=language).text == text


@pytest.mark.parametrize(
    ("path", "language", "text"),
    [
        ("config/app.ini", "INI", "[db]\npassword = Nimbus793\n"),
        ("app.properties", "Java Properties", "spring.datasource.password=Nimbus793\n"),
        ("settings.xml", "XML", "<server><password>Nimbus793</password></server>\n"),
        ("Dockerfile", "Dockerfile", "FROM alpine\nENV ADMIN_PASSWORD Nimbus793\n"),
        ("secret.yaml", "YAML", "kind: Secret\ndata:\n  db-password: TmltYnVzNzkz\n"),
        ("analysis.py", "Jupyter Notebook", "%env DB_PASSWORD=Nimbus793\n"),
    ],
)
def test_secrets_in_configuration_formats_are_redacted(path: str, language: str, text: str) -> None:
    result = redact(text, path=path, language=language)
    assert "Nimbus793" not in result.text and "TmltYnVzNzkz" not in result.text


@pytest.mark.parametrize(
    "code",
    [
        'DSN = "host=db user=app password=P3pp3r106 dbname=app"\n',
        "# db password: P3pp3r106\n",
        'def connect():\n    """The redis password is P3pp3r106 (rotate it)."""\n',
        'os.environ.setdefault("DJANGO_SECRET_KEY", "P3pp3r106&vbvuejytfeh26k7")\n',
    ],
)
def test_secrets_in_strings_comments_and_docstrings_of_code_are_redacted(code: str) -> None:
    assert "P3pp3r106" not in redact(code, path="app/db.py", language="Python").text


def test_shell_scripts_still_parse_after_redaction() -> None:
    script = (
        "#!/bin/sh\nexport GITHUB_TOKEN=ghp_R4nd0mT0k3nV4lu3F0rT3st1ngAbCdEf1234\n"
        "helm upgrade api ./chart --set secrets.apiKey=Uqxh4raeBe7Us4BaZlNkRNeVe\n"
    )
    result = redact(script, path="scripts/deploy.sh", language="Shell")
    assert "ghp_" not in result.text and "Uqxh4" not in result.text
    check = subprocess.run(["bash", "-n"], input=result.text, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr


def test_json_stays_valid_after_redaction() -> None:
    doc = json.dumps({"owner": "ravi.müller@acme-payments.io", "api_key": "Uqxh4raeBe7Us4BaZl9"})
    result = redact(doc, path="config/secrets.json", language="JSON")
    assert json.loads(result.text) == {"owner": "<EMAIL>", "api_key": "<API_KEY>"}


def test_xml_stays_well_formed_after_redaction() -> None:
    xml = (
        '<settings><add key="DbPassword" value="Nimbus793" />'
        "<token>ghp_R4nd0mT0k3nV4lu3F0rT3st1ngAbCdEf1234</token></settings>"
    )
    result = redact(xml, path="app.config", language="XML")
    root = ET.fromstring(result.text)
    assert root.find("add").get("value") == "<PASSWORD>"  # type: ignore[union-attr]
    assert root.findtext("token") == "<TOKEN>"


# --- the benchmark's generator, a handful of kinds x contexts -------------------------------

KINDS = [
    "aws_secret_access_key",
    "password",
    "github_pat",
    "jwt",
    "postgres_url",
    "email",
    "generic_api_key",
    "rsa_private_key",
    "azure_client_secret",
    "basic_auth_header",
]
CONTEXTS = [
    "python",
    "yaml",
    "dotenv",
    "cli_flag",
    "curl",
    "http_client",
    "docstring",
    "notebook",
    "xml",
    "k8s_secret_data",
    "url_userinfo",
    "connection_string",
]


def test_generated_secrets_are_caught_in_every_context() -> None:
    missed = []
    files = list(planted(seed=7, samples=2, kinds=KINDS, contexts=CONTEXTS))
    for p in files:
        text = code_cells(p.text) if p.language == "Jupyter Notebook" else p.text
        out = redact(text, path=p.path, language=p.language).text
        missed += [(p.kind, p.context) for v in p.vanish if v in out]
    assert len(files) > 150 and missed == []
