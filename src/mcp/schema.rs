//! Tool input schemas, made small enough to sit in every conversation.
//!
//! Claude reads every tool's schema before the artist says a word, so bytes
//! there are paid in every conversation. schemars writes what a validator
//! wants (`$schema`, `format: uint32`, `minimum: 0`, `default: null`,
//! `type: [x, "null"]`, `anyOf` with `null`, `$defs` behind `$ref`, enums as
//! `oneOf` of documented constants); a model needs the names, types, allowed
//! values and the field's own description. [`compact`] rewrites a schema to
//! that, without changing what it accepts for a present value: optional
//! fields are already optional by not being `required`, and the arguments are
//! still parsed by serde into the typed struct, which is the real contract.

use serde_json::{Map, Value};

/// Rewrites `schema` in place to its compact form.
pub fn compact(schema: &mut Map<String, Value>) {
    let defs = match schema.remove("$defs") {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    schema.remove("$schema");
    schema.remove("title");
    // The struct's own doc ("Which job to look at.") repeats the tool's description.
    schema.remove("description");
    compact_object(schema, &defs, 0);
}

/// Deepest `$ref` chain followed; deeper ones are left as a plain object.
const MAX_DEPTH: usize = 8;

fn compact_value(value: &mut Value, defs: &Map<String, Value>, depth: usize) {
    match value {
        Value::Object(map) => compact_object(map, defs, depth),
        Value::Array(items) => {
            for item in items {
                compact_value(item, defs, depth);
            }
        }
        _ => {}
    }
}

fn compact_object(map: &mut Map<String, Value>, defs: &Map<String, Value>, depth: usize) {
    inline_reference(map, defs, depth);
    drop_null_alternative(map, defs, depth);
    flatten_documented_enum(map);

    if map.get("default") == Some(&Value::Null) {
        map.remove("default");
    }
    if let Some(Value::Array(types)) = map.get("type") {
        let named: Vec<Value> = types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .cloned()
            .collect();
        if named.len() == 1 {
            map.insert("type".into(), named[0].clone());
        }
    }
    if let Some(format) = map.remove("format") {
        // Unsigned integers say `minimum: 0` only because of their Rust type.
        let unsigned = format.as_str().is_some_and(|f| f.starts_with("uint"));
        if unsigned && map.get("minimum").and_then(Value::as_f64) == Some(0.0) {
            map.remove("minimum");
        }
        let type_max = match format.as_str() {
            Some("uint8") => Some(f64::from(u8::MAX)),
            Some("uint16") => Some(f64::from(u16::MAX)),
            _ => None,
        };
        if type_max.is_some() && map.get("maximum").and_then(Value::as_f64) == type_max {
            map.remove("maximum");
        }
    }
    map.remove("additionalProperties");
    map.remove("title");

    for key in ["properties", "items", "anyOf", "oneOf", "allOf"] {
        if let Some(child) = map.get_mut(key) {
            match key {
                "properties" => {
                    if let Value::Object(props) = child {
                        for prop in props.values_mut() {
                            compact_value(prop, defs, depth);
                        }
                    }
                }
                _ => compact_value(child, defs, depth),
            }
        }
    }
    if let Some(Value::Object(extra)) = map.get_mut("additionalProperties") {
        let mut extra = Value::Object(std::mem::take(extra));
        compact_value(&mut extra, defs, depth);
        map.insert("additionalProperties".into(), extra);
    }
}

/// `{"$ref": "#/$defs/X", "description": d}` becomes X's own schema, keeping
/// the field's description (it says more about this use than X's does).
fn inline_reference(map: &mut Map<String, Value>, defs: &Map<String, Value>, depth: usize) {
    let Some(Value::String(target)) = map.get("$ref") else {
        return;
    };
    let Some(name) = target.strip_prefix("#/$defs/") else {
        return;
    };
    let Some(Value::Object(def)) = defs.get(name) else {
        return;
    };
    if depth >= MAX_DEPTH {
        map.remove("$ref");
        map.insert("type".into(), Value::String("object".into()));
        return;
    }
    let mut def = def.clone();
    compact_object(&mut def, defs, depth + 1);
    map.remove("$ref");
    for (key, value) in def {
        map.entry(key).or_insert(value);
    }
}

/// `anyOf: [X, {"type": "null"}]` (an `Option<X>`) becomes X.
fn drop_null_alternative(map: &mut Map<String, Value>, defs: &Map<String, Value>, depth: usize) {
    let Some(Value::Array(options)) = map.get("anyOf") else {
        return;
    };
    let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
    let kept: Vec<Value> = options.iter().filter(|o| !is_null(o)).cloned().collect();
    if kept.len() != 1 || kept.len() == options.len() {
        return;
    }
    map.remove("anyOf");
    let mut only = kept.into_iter().next().unwrap_or(Value::Null);
    compact_value(&mut only, defs, depth);
    if let Value::Object(only) = only {
        for (key, value) in only {
            map.entry(key).or_insert(value);
        }
    }
}

/// `oneOf` of documented string constants (and plain string enums) becomes
/// one `enum`: the values are what a model needs; each variant's paragraph
/// belongs in the field's description where it matters.
fn flatten_documented_enum(map: &mut Map<String, Value>) {
    let Some(Value::Array(options)) = map.get("oneOf") else {
        return;
    };
    let mut values = Vec::new();
    for option in options {
        if let Some(c) = option.get("const") {
            values.push(c.clone());
        } else if let Some(Value::Array(e)) = option.get("enum") {
            values.extend(e.iter().cloned());
        } else {
            return;
        }
    }
    if !values.iter().all(Value::is_string) {
        return;
    }
    map.remove("oneOf");
    map.insert("type".into(), Value::String("string".into()));
    map.insert("enum".into(), Value::Array(values));
}

/// Drops the annotation hints that say what MCP already assumes when a hint
/// is absent (not read-only, destructive, not idempotent, open world), and
/// the write hints of a read-only tool, which the specification says to
/// ignore: the client reads the same meaning from fewer bytes.
pub fn compact_annotations(a: &mut rmcp::model::ToolAnnotations) {
    if a.read_only_hint == Some(false) {
        a.read_only_hint = None;
    }
    if a.read_only_hint == Some(true) {
        a.destructive_hint = None;
        a.idempotent_hint = None;
    }
    if a.destructive_hint == Some(true) {
        a.destructive_hint = None;
    }
    if a.idempotent_hint == Some(false) {
        a.idempotent_hint = None;
    }
    if a.open_world_hint == Some(true) {
        a.open_world_hint = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Flavour {
        /// Sweet.
        Vanilla,
        /// Bitter.
        DarkChocolate,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        /// How many.
        count: Option<u32>,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Args {
        /// The project's name.
        project: String,
        /// Which flavour.
        #[serde(default)]
        flavour: Option<Flavour>,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        ratio: Option<f64>,
    }

    fn compacted<T: schemars::JsonSchema>() -> Value {
        let mut schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
        compact(schema.as_object_mut().unwrap());
        schema
    }

    #[test]
    fn optional_fields_enums_and_nested_structs_come_out_plain() {
        let schema = compacted::<Args>();
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "project": {"type": "string", "description": "The project's name."},
                    "flavour": {"type": "string", "enum": ["vanilla", "dark_chocolate"], "description": "Which flavour."},
                    "inner": {"type": "object", "properties": {"count": {"type": "integer", "description": "How many."}}},
                    "ratio": {"type": "number"}
                },
                "required": ["project"]
            })
        );
    }

    #[test]
    fn the_compact_schema_is_much_smaller() {
        let full = serde_json::to_string(&schemars::schema_for!(Args)).unwrap();
        let small = serde_json::to_string(&compacted::<Args>()).unwrap();
        assert!(
            small.len() * 2 < full.len(),
            "{} vs {}",
            small.len(),
            full.len()
        );
    }

    #[test]
    fn a_self_referencing_schema_ends() {
        let mut schema = json!({
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
            "$ref": "#/$defs/Node"
        });
        compact(schema.as_object_mut().unwrap());
        assert!(serde_json::to_string(&schema).unwrap().len() < 2_000);
    }
}
