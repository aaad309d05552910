"""Planted secrets and PII: one realistic value per kind, and files that carry them."""

from __future__ import annotations

# kind -> the secret value exactly as it appears in the planted file (never in any shard).
SECRETS: dict[str, str] = {
    "aws_access_key_id": "AKIAZ3MXQ7RTBW2LKPQN",
    "aws_secret_access_key": "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",
    "github_token": "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngAbCdEf1234",
    "gitlab_token": "glpat-x7Kq2Lm9Np4Rs6Tv8Wy1",
    "slack_token": "xoxb-283746192837-1928374650192-AbCdEfGhIjKlMnOpQrStUvWx",
    "slack_webhook": "https://hooks.slack.com/services/T024BE7LD/B01ABCDEF9G/q8Wm3Zp0Lk7Rt5Yx2Vb9Nc4D",
    "stripe_key": "sk_live_51HaQ2mK8vLp3Xz7Yt9Wq4Rs6",
    "google_api_key": "AIzaSyD3fK9xLm2Qp7Rt5Vw8Yz1Bc4Ne6Gh0Jk7",
    "openai_key": "sk-proj-Q8mZ2kLp9Xv4Rt7Wy1Bn5Cd3Fg6Hj0Km2",
    "jwt": (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MjQyNDIiLCJyb2xlIjoiYWRtaW4ifQ"
        ".k3V9xQm2Lp7Rt5Wy8Zb1Nc4Df6Gh0Jk3Lm9Pq2Rs5"
    ),
    "twilio_key": "SK4f8e2a9b7c1d3e5f60718293a4b5c6d7",
    "sendgrid_key": "SG.Zx9Kq2Lm7Np4Rs6Tv8Wy1A.Bc3De5Fg7Hj9Kl2Mn4Pq6Rs8Tu0Vw2Xy4Za6Bc8De0Fg",
    "npm_token": "npm_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "pypi_token": "pypi-AgEIcHlwaS5vcmcCJDk4ZjE2YzQ1LTg3ZTItNGQ1Yi1h"
    "MmE3LWQ5YjQ4YjM0ZTcxNgACKlszLCJ",
    "huggingface_token": "hf_QmZ2kLp9Xv4Rt7Wy1Bn5Cd3Fg6Hj0Km2Ab",
    "mailgun_key": "key-3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
    "databricks_token": "dapi0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "telegram_bot_token": "7281946350:AAH4kX9mQ2pL7rT5vW8yZ1bN3cF6gJ0dK2s",
    "digitalocean_token": "dop_v1_"
    + "4c7f2a9e1b8d3c6f0a5e9b2d7c4f1a8e3b6d0c9f2a5e8b1d4c7f0a3e6b9d2c5f",
    "shopify_token": "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",
    "private_key_body": "MIIEowIBAAKCAQEAq7BFUAX9mQ2pL7rT5vW8yZ1bN3cF6gJ0dK2sR4tY6uI8oP0a",
    "db_password": "Sup3r-S3cret-Pw-2024",
    "password_assignment": "correct-horse-battery-staple-9",
    "email": "jane.doe@acme-payments.com",
    "ip_address": "81.2.69.142",
    "ipv6_address": "2a02:8071:a1b2:3c4d::8a2e:7334",
    "bearer_token": "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1u",
    "azure_storage_key": "Xq7Lm2Np9Rs4Tv6Wy8Zb1Cd3Fg5Hj7Kl9Mn2Pq4Rs6Tv8Wy0Zb2Cd4Fg6Hj8Kl0"
    "Mn3Pq5Rs7Tv9Wy1Zb3Cd5==",
}


def secrets_module() -> str:
    """A Python module using every planted secret the way real code leaks them."""
    s = SECRETS
    return f'''"""Payment gateway settings (do not commit real keys!)."""

import os

AWS_ACCESS_KEY_ID = "{s["aws_access_key_id"]}"
aws_secret_access_key = "{s["aws_secret_access_key"]}"
GITHUB_TOKEN = "{s["github_token"]}"
GITLAB = "{s["gitlab_token"]}"
SLACK_BOT = "{s["slack_token"]}"
SLACK_HOOK = "{s["slack_webhook"]}"
STRIPE = "{s["stripe_key"]}"
MAPS = "{s["google_api_key"]}"
OPENAI = "{s["openai_key"]}"
SESSION = "{s["jwt"]}"
TWILIO = "{s["twilio_key"]}"
SENDGRID = "{s["sendgrid_key"]}"
NPM = "{s["npm_token"]}"
PYPI = "{s["pypi_token"]}"
HF = "{s["huggingface_token"]}"
MAILGUN = "{s["mailgun_key"]}"
DATABRICKS = "{s["databricks_token"]}"
TELEGRAM = "{s["telegram_bot_token"]}"
DIGITALOCEAN = "{s["digitalocean_token"]}"
SHOPIFY = "{s["shopify_token"]}"
DATABASE_URL = "postgresql://payments:{s["db_password"]}@db.internal:5432/payments"
admin_password = "{s["password_assignment"]}"
SUPPORT = "{s["email"]}"
GATEWAY_IP = "{s["ip_address"]}"
GATEWAY_IP6 = "{s["ipv6_address"]}"
HEADERS = {{"Authorization": "Bearer {s["bearer_token"]}"}}
BLOB = "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={s["azure_storage_key"]}"
DEPLOY_KEY = """-----BEGIN RSA PRIVATE KEY-----
{s["private_key_body"]}
-----END RSA PRIVATE KEY-----"""


def gateway_url(path: str) -> str:
    """The gateway endpoint for `path`, read from the environment when set."""
    base = os.environ.get("GATEWAY_URL", "https://pay.acme.example")
    return base.rstrip("/") + "/" + path.lstrip("/")


def retry_delays(attempts: int) -> list[float]:
    """Exponential back-off delays for `attempts` retries, capped at thirty seconds."""
    return [min(30.0, 0.5 * 2**i) for i in range(attempts)]


def describe(amount_cents: int, currency: str) -> str:
    """A human readable amount such as 12.50 EUR for logs and receipts."""
    return f"{{amount_cents // 100}}.{{amount_cents % 100:02d}} {{currency.upper()}}"


class Gateway:
    """Talks to the payment gateway with retries and structured errors."""

    def __init__(self, base_url: str, attempts: int = 3) -> None:
        self.base_url = base_url
        self.attempts = attempts
        self.sent: list[tuple[str, int]] = []

    def charge(self, account: str, amount_cents: int, currency: str = "EUR") -> str:
        """Charge an account and return the receipt line."""
        if amount_cents <= 0:
            raise ValueError("amount must be positive")
        if not account.startswith("acct_"):
            raise ValueError("account ids start with acct_")
        self.sent.append((account, amount_cents))
        return describe(amount_cents, currency)

    def refund(self, account: str, amount_cents: int, reason: str) -> str:
        """Refund part of a charge, keeping the reason for the audit log."""
        if not reason:
            raise ValueError("a refund needs a reason")
        self.sent.append((account, -amount_cents))
        return describe(amount_cents, "EUR") + " refunded: " + reason

    def total(self, account: str) -> int:
        """Net amount sent for an account, in cents."""
        return sum(amount for acct, amount in self.sent if acct == account)
'''
