"""The JSON Schema and the C++ loader agree: shipped plans pass, broken plans fail."""
import copy
import json
import pathlib

import jsonschema

from script_checks import check, finish

root = pathlib.Path(__file__).resolve().parent.parent
schema = json.loads((root / "configs" / "plan.schema.json").read_text())
validator = jsonschema.Draft202012Validator(schema)

plans = sorted((root / "configs" / "plans").glob("*.json"))
check("there are example plans", len(plans) >= 3)
for path in plans:
    errors = list(validator.iter_errors(json.loads(path.read_text())))
    check(f"{path.name} matches the schema: {[e.message for e in errors[:3]]}", not errors)

plan = json.loads(plans[0].read_text())
bad = copy.deepcopy(plan)
bad["layers"][0]["heads"][0]["window"]["groups"][0]["tiles"] = [3]
check("a one-number window fails the schema", not validator.is_valid(bad))
bad = copy.deepcopy(plan)
bad["layers"][0]["heads"][0]["rule"] = "sparse"
check("an unknown rule fails the schema", not validator.is_valid(bad))
bad = copy.deepcopy(plan)
bad["tile_shape"] = [1, 2, 3]
check("an unknown field fails the schema", not validator.is_valid(bad))

finish("plan schema")
