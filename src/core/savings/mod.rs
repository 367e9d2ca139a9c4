//! What sleeping saved: prices (shipped table, Price List answers) and savings from the history.

pub mod prices;
pub mod report;
pub mod waits;
