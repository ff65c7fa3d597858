//! A principal's scopes compiled against the registry: per group whether it may be read
//! or written, per source whether its events may be sent, and the two flags (admin,
//! metrics). A feature service scope grants reading the groups the service reads. Checking
//! is an index into a vector.

use riffle_registry::{GroupId, ReadScope, Registry, Scope};

/// What one caller may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    read: Vec<bool>,
    write: Vec<bool>,
    ingest: Vec<bool>,
    admin: bool,
    metrics: bool,
}

impl Grants {
    /// Nothing at all.
    pub fn none(registry: &Registry) -> Grants {
        Grants {
            read: vec![false; registry.groups.len()],
            write: vec![false; registry.groups.len()],
            ingest: vec![false; registry.sources.len()],
            admin: false,
            metrics: false,
        }
    }

    /// What `scopes` grant.
    pub fn of(registry: &Registry, scopes: &[Scope]) -> Grants {
        let mut grants = Grants::none(registry);
        for scope in scopes {
            match *scope {
                Scope::Read(ReadScope::All) => grants.read.fill(true),
                Scope::Read(ReadScope::Group(g)) => grants.read[g] = true,
                Scope::Read(ReadScope::Service(s)) => {
                    for feature in &registry.services[s].features {
                        grants.read[feature.group] = true;
                    }
                }
                Scope::Write(None) => grants.write.fill(true),
                Scope::Write(Some(g)) => grants.write[g] = true,
                Scope::Ingest(None) => grants.ingest.fill(true),
                Scope::Ingest(Some(s)) => grants.ingest[s] = true,
                Scope::Admin => grants.admin = true,
                Scope::Metrics => grants.metrics = true,
            }
        }
        grants
    }

    pub fn may_read(&self, group: GroupId) -> bool {
        self.read.get(group).copied().unwrap_or(false)
    }

    /// The first of `groups` it may not read.
    pub fn unreadable(&self, groups: impl IntoIterator<Item = GroupId>) -> Option<GroupId> {
        groups
            .into_iter()
            .find(|&g| !self.read.get(g).copied().unwrap_or(false))
    }

    pub fn may_write(&self, group: GroupId) -> bool {
        self.write.get(group).copied().unwrap_or(false)
    }

    pub fn may_ingest(&self, source: usize) -> bool {
        self.ingest.get(source).copied().unwrap_or(false)
    }

    pub fn admin(&self) -> bool {
        self.admin
    }

    pub fn metrics(&self) -> bool {
        self.metrics
    }

    /// Whether it may read anything at all (to refuse a reader with no read scope before
    /// its body is read).
    pub fn reads_anything(&self) -> bool {
        self.read.iter().any(|&r| r)
    }

    pub fn writes_anything(&self) -> bool {
        self.write.iter().any(|&w| w)
    }

    pub fn ingests_anything(&self) -> bool {
        self.ingest.iter().any(|&i| i)
    }
}
