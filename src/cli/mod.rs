//! One module per subcommand (or family of them) of the command line.

pub(crate) mod hold;
pub(crate) mod login;
pub(crate) mod package;
pub(crate) mod report;
pub(crate) mod send;
pub(crate) mod setup;
pub(crate) mod ssh_proxy;
pub(crate) mod status;

pub(crate) use hold::*;
pub(crate) use login::*;
pub(crate) use package::*;
pub(crate) use report::*;
pub(crate) use send::*;
pub(crate) use setup::*;
pub(crate) use ssh_proxy::*;
pub(crate) use status::*;
