//! dangjian-server: the platform's HTTP API, domain rules and storage.
//!
//! Areas of the domain each own a folder (`org/`, `unit/`, `member/`, `account/`) with their
//! types, rules, storage and routes; `access` answers every permission question; `audit`
//! records every change in the same transaction; `db` hides the two engines.

pub mod access;
pub mod account;
pub mod api_doc;
pub mod app;
pub mod approval;
pub mod attachment;
pub mod audit;
pub mod card;
pub mod cli;
pub mod collate;
pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod dict;
pub mod error;
pub mod fields;
pub mod forms;
pub mod import;
pub mod jobs;
pub mod letter;
pub mod member;
pub mod notify;
pub mod org;
pub mod personal;
pub mod quality;
pub mod query;
pub mod realname;
pub mod roster;
pub mod state;
pub mod stats;
pub mod tls;
pub mod transfer;
pub mod unit;
pub mod web;
