//! multiomix-aws-emr: runs Multiomix feature-selection Spark jobs and tells Multiomix
//! when they end.
//!
//! - [`config`]: every environment variable, read and checked once at start-up.

pub mod config;
