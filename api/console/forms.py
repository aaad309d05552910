"""From HTML forms to the same request models the REST API takes, with errors per field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tailor.errors import TailorError

M = TypeVar("M", bound=BaseModel)
GENERAL = "_form"  # errors that belong to no single field are shown above the form


class FormErrors(Exception):
    """Messages keyed by field name, to be shown next to each field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate `data` as `model`; FormErrors names each field that failed and why."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors(include_input=False, include_url=False):
            loc = [str(p) for p in err["loc"]]
            field = loc[0] if loc else GENERAL
            errors.setdefault(field, _message(model, field, err))
        raise FormErrors(errors) from exc


# What each patterned field accepts, in words (a regex in a message helps no one).
PATTERN_HELP = {
    "slug": "use lowercase letters, digits and dashes, not starting or ending with a dash",
    "name": "use letters, digits, '.', '_' and '-', starting with a letter or digit",
    "adapter_name": "use lowercase letters, digits and dashes, starting with a letter or digit",
    "adapter": "use lowercase letters, digits and dashes",
    "branch": "use letters, digits, '.', '_', '/' and '-'",
    "dataset_id": "choose one of the team's datasets",
}


def _message(model: type[BaseModel], field: str, err: Any) -> str:
    if err["type"] == "string_pattern_mismatch":
        help_text = PATTERN_HELP.get(field)
        info = model.model_fields.get(field)
        help_text = help_text or (info.description if info and info.description else "")
        return "Not in the expected form" + (f": {help_text}." if help_text else ".")
    return str(err["msg"]).removeprefix("Value error, ")


def service_errors(exc: TailorError) -> dict[str, str]:
    """A service's refusal, next to the field it names (or above the form)."""
    field = exc.extra.get("field")
    return {str(field) if field else GENERAL: exc.detail}


def lines(text: str) -> list[str]:
    """A textarea of one item per line (globs, names) as a list, blanks dropped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def optional_int(text: str) -> int | str | None:
    """An optional number field: empty means unset; anything else is left to validation."""
    text = text.strip()
    if not text:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def optional_float(text: str) -> float | str | None:
    """An optional decimal field: empty means unset; anything else is left to validation."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return text
