//! What a node fault acts on and whose calls a trigger counts: a node by name, or whichever
//! node holds a role of the experiment (`[roles]`) when it matters: [`Target`].

use std::fmt;

/// A node, named or found by its role.
///
/// A role is resolved by the run (the experiment's probe for it), never here: a fault aimed
/// at a role acts on the node holding it when the fault fires, a trigger whose pattern names
/// a role counts the calls of the nodes holding it as the run last found them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `node = "e1"`.
    Node(String),
    /// `role = "leader"`.
    Role(String),
}

impl Target {
    /// The node's name, when it is named.
    pub fn node(&self) -> Option<&str> {
        match self {
            Target::Node(n) => Some(n),
            Target::Role(_) => None,
        }
    }

    /// The role, when the node is found by it.
    pub fn role(&self) -> Option<&str> {
        match self {
            Target::Role(r) => Some(r),
            Target::Node(_) => None,
        }
    }

    /// The key that says it in a schedule file: `node` or `role`.
    pub fn key(&self) -> &'static str {
        match self {
            Target::Node(_) => "node",
            Target::Role(_) => "role",
        }
    }

    /// The name it gives: a node's or a role's.
    pub fn name(&self) -> &str {
        match self {
            Target::Node(n) | Target::Role(n) => n,
        }
    }

    /// Whether it is `node`, given the nodes holding its role (for a role).
    pub fn is(&self, node: &str, holders: &[String]) -> bool {
        match self {
            Target::Node(n) => n == node,
            Target::Role(_) => holders.iter().any(|h| h == node),
        }
    }
}

impl From<&str> for Target {
    /// A node by name.
    fn from(node: &str) -> Target {
        Target::Node(node.to_string())
    }
}

impl From<String> for Target {
    /// A node by name.
    fn from(node: String) -> Target {
        Target::Node(node)
    }
}

impl fmt::Display for Target {
    /// `e1`, or `role leader`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => f.write_str(n),
            Target::Role(r) => write!(f, "role {r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_names_a_node_or_a_role() {
        let node = Target::from("e1");
        let role = Target::Role("leader".into());
        assert_eq!(
            (node.node(), node.role(), node.key()),
            (Some("e1"), None, "node")
        );
        assert_eq!(
            (role.node(), role.role(), role.key()),
            (None, Some("leader"), "role")
        );
        assert_eq!(
            (node.to_string(), role.to_string()),
            ("e1".into(), "role leader".into())
        );
        let holders = ["e2".to_string()];
        assert!(node.is("e1", &holders) && !node.is("e2", &holders));
        assert!(role.is("e2", &holders) && !role.is("e1", &holders));
        assert!(!role.is("e2", &[]));
    }
}
