//! API-format workflows: `{node_id: {class_type, inputs}}`, the graphs
//! ComfyUI runs. They are checked before they leave us (the editor's own
//! format is recognised and refused with how to export the API one; links to
//! missing nodes and loops are named), and changed only by node id and input
//! name, never by replacing text.

use std::collections::BTreeMap;

use crate::studio::Hint;
use serde_json::{Map, Value};

/// Why a workflow cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(
        "this is a workflow as ComfyUI's editor saves it (with `nodes` and `links`), not the API format ComfyUI runs"
    )]
    UiFormat,
    #[error("the workflow is not a JSON object of nodes: {reason}")]
    NotAGraph { reason: String },
    #[error("the workflow has no nodes")]
    Empty,
    #[error("node `{node}` has no `class_type` (every node needs one)")]
    MissingClass { node: String },
    #[error(
        "node `{node}` ({class_type}): its input `{input}` is linked to node `{target}`, which is not in the workflow"
    )]
    DanglingLink {
        node: String,
        class_type: String,
        input: String,
        target: String,
    },
    #[error("the workflow's links go round in a loop: {}", .nodes.join(" → "))]
    Cycle { nodes: Vec<String> },
    #[error("the workflow has no node `{node}`")]
    NoSuchNode { node: String },
    #[error("node `{node}` ({class_type}) has no input `{input}`; it has: {known}")]
    NoSuchInput {
        node: String,
        class_type: String,
        input: String,
        known: String,
    },
    #[error("parameter `{name}`: {reason}")]
    BadParameter {
        name: String,
        reason: String,
        hint: String,
    },
    #[error("`{name}` is neither a template nor a saved workflow")]
    Unknown { name: String, known: String },
    #[error("could not read the workflow `{path}`: {reason}")]
    Read { path: String, reason: String },
}

impl Hint for WorkflowError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            WorkflowError::UiFormat => "in ComfyUI, open the workflow and choose Workflow → Export (API) (older versions: turn on 'Dev mode' in the settings, then 'Save (API Format)'), and give that file".into(),
            WorkflowError::NotAGraph { .. } | WorkflowError::Empty | WorkflowError::MissingClass { .. } => {
                "give an API-format workflow (Workflow → Export (API) in ComfyUI) or one of our templates (comfyui_submit without a workflow lists them)".into()
            }
            WorkflowError::DanglingLink { .. } | WorkflowError::Cycle { .. } => {
                "export the workflow from ComfyUI again; a hand edit may have broken a link".into()
            }
            WorkflowError::NoSuchNode { .. } | WorkflowError::NoSuchInput { .. } => {
                "set parameters as `node_id.input_name` with ids and names from the workflow file".into()
            }
            WorkflowError::BadParameter { hint, .. } => hint.clone(),
            WorkflowError::Unknown { known, .. } => format!("use one of: {known}"),
            WorkflowError::Read { .. } => "give a JSON file inside the workspace".into(),
        })
    }
}

/// A checked API-format workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    nodes: Map<String, Value>,
}

/// `[node_id, output_index]`: how an input names another node's output.
fn as_link(v: &Value) -> Option<&str> {
    let a = v.as_array()?;
    if a.len() == 2 && a[1].is_u64() {
        a[0].as_str()
    } else {
        None
    }
}

/// Node ids in numeric order where they are numbers.
fn id_order(id: &str) -> (u64, String) {
    (id.parse::<u64>().unwrap_or(u64::MAX), id.to_string())
}

impl Workflow {
    /// Checks `value` as an API-format graph. A `/prompt` body
    /// (`{"prompt": {...}}`) is unwrapped.
    pub fn from_value(value: Value) -> Result<Workflow, WorkflowError> {
        let Value::Object(mut map) = value else {
            return Err(WorkflowError::NotAGraph {
                reason: "it is not a JSON object".into(),
            });
        };
        if map.get("nodes").is_some_and(Value::is_array) && map.contains_key("links") {
            return Err(WorkflowError::UiFormat);
        }
        if map.len() <= 3
            && let Some(Value::Object(inner)) = map.get("prompt")
            && inner.values().all(|n| n.get("class_type").is_some())
        {
            map = inner.clone();
        }
        if map.is_empty() {
            return Err(WorkflowError::Empty);
        }
        for (id, node) in &map {
            let Some(obj) = node.as_object() else {
                return Err(WorkflowError::NotAGraph {
                    reason: format!("node `{id}` is not an object"),
                });
            };
            if !obj.get("class_type").is_some_and(Value::is_string) {
                return Err(WorkflowError::MissingClass { node: id.clone() });
            }
            if obj.get("inputs").is_some_and(|i| !i.is_object()) {
                return Err(WorkflowError::NotAGraph {
                    reason: format!("the `inputs` of node `{id}` are not an object"),
                });
            }
        }
        let wf = Workflow { nodes: map };
        wf.check_links()?;
        Ok(wf)
    }

    /// Parses JSON text, then checks it.
    pub fn from_json(text: &str) -> Result<Workflow, WorkflowError> {
        let value = serde_json::from_str(text).map_err(|e| WorkflowError::NotAGraph {
            reason: e.to_string(),
        })?;
        Workflow::from_value(value)
    }

    fn check_links(&self) -> Result<(), WorkflowError> {
        let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for id in self.ids() {
            let node = &self.nodes[id];
            for (input, v) in node
                .get("inputs")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if let Some(target) = as_link(v) {
                    if !self.nodes.contains_key(target) {
                        return Err(WorkflowError::DanglingLink {
                            node: id.to_string(),
                            class_type: self.class_of(id).to_string(),
                            input: input.clone(),
                            target: target.to_string(),
                        });
                    }
                    edges.entry(id).or_default().push(target);
                }
            }
        }
        // Depth-first search with three colours; a grey node met again closes a loop.
        #[derive(Clone, Copy, PartialEq)]
        enum Colour {
            White,
            Grey,
            Black,
        }
        let mut colour: BTreeMap<&str, Colour> = self
            .ids()
            .into_iter()
            .map(|id| (id, Colour::White))
            .collect();
        for start in self.ids() {
            if colour[start] != Colour::White {
                continue;
            }
            let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
            colour.insert(start, Colour::Grey);
            while let Some((node, next)) = stack.last().copied() {
                let targets = edges.get(node).map(Vec::as_slice).unwrap_or(&[]);
                if let Some(&t) = targets.get(next) {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    match colour[t] {
                        Colour::White => {
                            colour.insert(t, Colour::Grey);
                            stack.push((t, 0));
                        }
                        Colour::Grey => {
                            let from = stack.iter().position(|(n, _)| *n == t).unwrap_or(0);
                            let mut nodes: Vec<String> =
                                stack[from..].iter().map(|(n, _)| n.to_string()).collect();
                            nodes.push(t.to_string());
                            return Err(WorkflowError::Cycle { nodes });
                        }
                        Colour::Black => {}
                    }
                } else {
                    colour.insert(node, Colour::Black);
                    stack.pop();
                }
            }
        }
        Ok(())
    }

    /// Node ids, numbers first in numeric order.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.nodes.keys().map(String::as_str).collect();
        ids.sort_by_key(|id| id_order(id));
        ids
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A node's class (`""` for an unknown id).
    pub fn class_of(&self, id: &str) -> &str {
        self.nodes
            .get(id)
            .and_then(|n| n.get("class_type"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Ids of the nodes of one class, in order.
    pub fn nodes_of_class(&self, class: &str) -> Vec<String> {
        self.ids()
            .into_iter()
            .filter(|id| self.class_of(id) == class)
            .map(String::from)
            .collect()
    }

    /// An input's value, when set.
    pub fn input(&self, node: &str, input: &str) -> Option<&Value> {
        self.nodes.get(node)?.get("inputs")?.get(input)
    }

    /// Sets an input the node already has (a name it lacks is refused).
    pub fn set_input(
        &mut self,
        node: &str,
        input: &str,
        value: Value,
    ) -> Result<(), WorkflowError> {
        let class_type = self.class_of(node).to_string();
        let Some(obj) = self.nodes.get_mut(node).and_then(Value::as_object_mut) else {
            return Err(WorkflowError::NoSuchNode {
                node: node.to_string(),
            });
        };
        let inputs = obj
            .entry("inputs")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(inputs) = inputs.as_object_mut() else {
            return Err(WorkflowError::NotAGraph {
                reason: format!("the `inputs` of node `{node}` are not an object"),
            });
        };
        if !inputs.contains_key(input) {
            let known: Vec<&str> = inputs.keys().map(String::as_str).collect();
            return Err(WorkflowError::NoSuchInput {
                node: node.to_string(),
                class_type,
                input: input.to_string(),
                known: if known.is_empty() {
                    "no inputs".into()
                } else {
                    known.join(", ")
                },
            });
        }
        inputs.insert(input.to_string(), value);
        Ok(())
    }

    /// The graph as ComfyUI takes it.
    pub fn to_value(&self) -> Value {
        Value::Object(self.nodes.clone())
    }

    /// Pretty JSON, for files.
    pub fn to_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.nodes).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SMOKE: &str = r#"{
      "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 16711680}},
      "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
      "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "smoke/test"}}
    }"#;

    #[test]
    fn the_observed_smoke_graph_is_accepted_and_set_by_id_and_name() {
        let mut wf = Workflow::from_json(SMOKE).unwrap();
        assert_eq!(wf.ids(), ["1", "2", "3"]);
        assert_eq!(wf.nodes_of_class("SaveImage"), ["3"]);
        wf.set_input("1", "width", json!(128)).unwrap();
        assert_eq!(wf.input("1", "width"), Some(&json!(128)));
        let e = wf.set_input("1", "widht", json!(1)).unwrap_err();
        assert!(e.to_string().contains("width, height") || e.to_string().contains("batch_size"));
        assert!(wf.set_input("9", "x", json!(1)).is_err());
        // A /prompt body is unwrapped.
        let body =
            json!({"prompt": serde_json::from_str::<Value>(SMOKE).unwrap(), "client_id": "x"});
        assert_eq!(Workflow::from_value(body).unwrap().len(), 3);
    }

    #[test]
    fn the_editor_format_is_refused_with_how_to_export() {
        let ui = json!({"last_node_id": 3, "nodes": [{"id": 1, "type": "KSampler"}], "links": [[1, 1, 0, 2, 0, "LATENT"]]});
        let e = Workflow::from_value(ui).unwrap_err();
        assert!(matches!(e, WorkflowError::UiFormat));
        assert!(e.hint().unwrap().contains("Export (API)"));
    }

    #[test]
    fn broken_graphs_are_named() {
        let dangling = json!({"1": {"class_type": "SaveImage", "inputs": {"images": ["7", 0]}}});
        let e = Workflow::from_value(dangling).unwrap_err();
        assert!(e.to_string().contains("node `7`"), "{e}");
        let cycle = json!({
            "1": {"class_type": "A", "inputs": {"x": ["3", 0]}},
            "2": {"class_type": "B", "inputs": {"x": ["1", 0]}},
            "3": {"class_type": "C", "inputs": {"x": ["2", 0]}},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}}
        });
        let e = Workflow::from_value(cycle).unwrap_err();
        assert!(
            matches!(e, WorkflowError::Cycle { ref nodes } if nodes.len() == 4),
            "{e}"
        );
        let no_class = json!({"1": {"inputs": {}}});
        assert!(matches!(
            Workflow::from_value(no_class).unwrap_err(),
            WorkflowError::MissingClass { .. }
        ));
        assert!(matches!(
            Workflow::from_json("[1,2]").unwrap_err(),
            WorkflowError::NotAGraph { .. }
        ));
        assert!(matches!(
            Workflow::from_json("{}").unwrap_err(),
            WorkflowError::Empty
        ));
    }
}
