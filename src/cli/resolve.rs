//! Connecting for a command that takes `--org`. Resolving what the user typed (`--org`,
//! LOCATION, PART) into cloud resources is the library's: [`crate::cloud::resolve`].

use super::GlobalArgs;
use super::target::{self, LocalOrg, Target};
pub use crate::cloud::resolve::{
    Places, organization, resolve_fragment, resolve_location, resolve_part,
};
pub use crate::model::rules::is_uuid;

/// Connects to the cloud for a command that takes `--org`: for the local target, the named
/// organization (created on first use, like a manifest's `organization:`); otherwise the
/// organization is chosen later by [`organization`].
pub async fn connect_org(global: &GlobalArgs, org: Option<&str>) -> anyhow::Result<Target> {
    match org {
        None => target::connect(global).await,
        Some(o) if is_uuid(o) => target::connect_for(global, LocalOrg::Id(o)).await,
        Some(o) => target::connect_for(global, LocalOrg::Name(o)).await,
    }
}
