//! Addressing: which members an envelope is for.

use serde::{Deserialize, Serialize};

use crate::{InstanceId, Member, ServiceName, ServiceType};

/// Who an envelope is addressed to. Topic patterns decide who is interested; the
/// target narrows that down to the members it names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "to")]
pub enum Target {
    /// Every subscriber whose pattern matches, with or without a member identity.
    #[default]
    Broadcast,
    /// Only subscriptions of this instance.
    Instance(InstanceId),
    /// Only subscriptions of instances of this service.
    Service(ServiceName),
    /// Only subscriptions of services of this type.
    ServiceType(ServiceType),
    /// Any subscription that one of these targets admits.
    Many(Vec<Target>),
}

impl Target {
    /// Whether a subscription held by `member` (or by no member) is addressed.
    pub fn admits(&self, member: Option<&Member>) -> bool {
        match self {
            Target::Broadcast => true,
            Target::Instance(id) => member.is_some_and(|m| &m.instance == id),
            Target::Service(name) => member.is_some_and(|m| &m.service == name),
            Target::ServiceType(kind) => member.is_some_and(|m| &m.service_type == kind),
            Target::Many(targets) => targets.iter().any(|t| t.admits(member)),
        }
    }

    /// True for [`Target::Broadcast`].
    pub fn is_broadcast(&self) -> bool {
        matches!(self, Target::Broadcast)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_admits_only_what_it_names() {
        let storage = Member::new("storage-1", "storage", "persistence");
        let ai = Member::new("ai-1", "ai", "inference");
        assert!(Target::Broadcast.admits(None));
        assert!(Target::Instance("storage-1".into()).admits(Some(&storage)));
        assert!(!Target::Instance("storage-2".into()).admits(Some(&storage)));
        assert!(!Target::Instance("storage-1".into()).admits(None));
        assert!(Target::Service("ai".into()).admits(Some(&ai)));
        assert!(!Target::Service("ai".into()).admits(Some(&storage)));
        assert!(Target::ServiceType("persistence".into()).admits(Some(&storage)));
        let both = Target::Many(vec![
            Target::Service("ai".into()),
            Target::Instance("storage-1".into()),
        ]);
        assert!(both.admits(Some(&ai)) && both.admits(Some(&storage)));
        assert!(!both.admits(Some(&Member::new("x", "y", "z"))));
    }
}
