//! Domain types shared by every layer: resources and capacities, what a sleep or wake did, activity, history events.

pub mod activity;
pub mod history;
pub mod operation;
pub mod outcome;
pub mod resource;
