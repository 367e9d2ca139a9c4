//! settings.json and services.yaml: parsing, validation and text edits; the IAM documents of `aws-setup`;
//! the SSO profiles of the AWS config file and its token cache format.

mod checker;
pub mod iam;
pub mod ini;
pub mod registry;
pub mod registry_edit;
pub mod settings;
pub mod settings_edit;
pub mod sso;
