"""Plain-dict JSON Schemas: fill in defaults, and check the common keywords.

The host validates every payload and config against the full JSON Schema before a run, so this
is not the gate. It gives workflows their ``default`` values (the host does not insert them),
and catches a child-workflow payload or a template's own bug early with a readable path. It
is pure Python (pydantic and jsonschema need native code componentize-py cannot load).
Keywords it does not know are ignored, never rejected.
"""

import re
from typing import Any, Dict, List

Schema = Dict[str, Any]

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer(),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def with_defaults(schema: Schema, value: Any) -> Any:
    """``value`` with every missing object property that has a ``default`` filled in (deep)."""
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        filled = dict(value)
        for name, sub in schema["properties"].items():
            if name not in filled and isinstance(sub, dict) and "default" in sub:
                filled[name] = sub["default"]
            if name in filled and isinstance(sub, dict):
                filled[name] = with_defaults(sub, filled[name])
        return filled
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [with_defaults(schema["items"], item) for item in value]
    return value


def violations(schema: Schema, value: Any, path: str = "$") -> List[str]:
    """Why ``value`` does not match ``schema`` (empty when it does), one ``path: reason`` each."""
    if not isinstance(schema, dict):
        return []
    errors: List[str] = []
    expected = schema.get("type")
    if expected is not None:
        kinds = expected if isinstance(expected, list) else [expected]
        if not any(_TYPES.get(kind, lambda v: True)(value) for kind in kinds):
            return [f"{path}: expected {' or '.join(kinds)}, got {_kind(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {schema['const']!r}")
    if isinstance(value, str):
        errors += _string(schema, value, path)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        errors += _number(schema, value, path)
    if isinstance(value, list):
        errors += _array(schema, value, path)
    if isinstance(value, dict):
        errors += _object(schema, value, path)
    if "anyOf" in schema and all(violations(sub, value, path) for sub in schema["anyOf"]):
        errors.append(f"{path}: matches none of anyOf")
    return errors


def _kind(value: Any) -> str:
    for kind in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[kind](value):
            return kind
    return type(value).__name__


def _string(schema: Schema, value: str, path: str) -> List[str]:
    errors = []
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{path}: shorter than {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path}: longer than {schema['maxLength']} characters")
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        errors.append(f"{path}: does not match /{schema['pattern']}/")
    return errors


def _number(schema: Schema, value: float, path: str) -> List[str]:
    errors = []
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: below the minimum {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: above the maximum {schema['maximum']}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        errors.append(f"{path}: not above {schema['exclusiveMinimum']}")
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        errors.append(f"{path}: not below {schema['exclusiveMaximum']}")
    return errors


def _array(schema: Schema, value: list, path: str) -> List[str]:
    errors = []
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{path}: fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{path}: more than {schema['maxItems']} items")
    if isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += violations(schema["items"], item, f"{path}[{i}]")
    return errors


def _object(schema: Schema, value: dict, path: str) -> List[str]:
    errors = [f"{path}: missing `{name}`" for name in schema.get("required", []) if name not in value]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            errors += violations(properties[name], item, f"{path}.{name}")
        elif extra is False:
            errors.append(f"{path}: unexpected property `{name}`")
        elif isinstance(extra, dict):
            errors += violations(extra, item, f"{path}.{name}")
    return errors
