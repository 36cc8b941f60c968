//! ListApiTokens: every filter alone and together (AND), every sort key both
//! ways with ties broken by id, pages, bounds, refused arguments, and
//! organization isolation.

mod arguments;
mod filters;
mod pages;
mod sorts;
mod visibility;

use std::collections::HashMap;

use tokend::pb;
use tokend::pb::api_token::Kind;

use crate::helpers::TestApp;

/// Tokens of a fixture by label, so expectations read as names.
pub struct Tokens(pub HashMap<&'static str, String>);

impl Tokens {
    pub fn new(app: &TestApp) -> Self {
        Self(HashMap::from([("bootstrap", app.token_id.clone())]))
    }

    pub fn add(&mut self, label: &'static str, token: &pb::ApiToken) {
        self.0.insert(label, token.id.clone());
    }

    pub fn id(&self, label: &str) -> &str {
        self.0
            .get(label)
            .unwrap_or_else(|| panic!("no token {label}"))
    }

    /// The ids of `labels` in the default order: id ascending.
    pub fn by_id(&self, labels: &[&str]) -> Vec<String> {
        let mut ids: Vec<String> = labels.iter().map(|l| self.id(l).to_owned()).collect();
        ids.sort();
        ids
    }

    /// The ids of `groups` in order; tokens within a group tie on every sort
    /// key and so come in id order, in the direction of the last sort key
    /// (`descending` when it is `:desc`), as the proto documents.
    pub fn in_order(&self, groups: &[Vec<&str>], descending: bool) -> Vec<String> {
        groups
            .iter()
            .flat_map(|group| {
                let mut ids = self.by_id(group);
                if descending {
                    ids.reverse();
                }
                ids
            })
            .collect()
    }

    /// The labels of `ids`, for readable failures.
    pub fn labels(&self, ids: &[String]) -> Vec<&'static str> {
        ids.iter()
            .map(|id| {
                self.0
                    .iter()
                    .find(|(_, v)| *v == id)
                    .map(|(k, _)| *k)
                    .unwrap_or("<unknown>")
            })
            .collect()
    }
}

pub fn ids(response: &pb::ListApiTokensResponse) -> Vec<String> {
    response.tokens.iter().map(|t| t.id.clone()).collect()
}

/// A List request for [`ORG`] with no filter, sort or page.
pub fn filter() -> pb::ListApiTokensRequest {
    pb::ListApiTokensRequest::default()
}

/// Builds List requests that read like the query string.
pub trait Query: Sized {
    fn workspace(self, id: &str) -> Self;
    fn deployment(self, id: &str) -> Self;
    fn dag(self, id: &str) -> Self;
    fn dag_tags(self, tags: &[&str]) -> Self;
    fn only_organization_tokens(self) -> Self;
    fn kind(self, kind: Kind) -> Self;
    fn sorts(self, sorts: &[&str]) -> Self;
    fn limit(self, limit: i32) -> Self;
    fn offset(self, offset: i32) -> Self;
}

impl Query for pb::ListApiTokensRequest {
    fn workspace(self, id: &str) -> Self {
        Self {
            workspace_id: id.into(),
            ..self
        }
    }
    fn deployment(self, id: &str) -> Self {
        Self {
            deployment_id: id.into(),
            ..self
        }
    }
    fn dag(self, id: &str) -> Self {
        Self {
            dag_id: id.into(),
            ..self
        }
    }
    fn dag_tags(self, tags: &[&str]) -> Self {
        Self {
            dag_tags: strings(tags),
            ..self
        }
    }
    fn only_organization_tokens(self) -> Self {
        Self {
            include_only_organization_tokens: true,
            ..self
        }
    }
    fn kind(self, kind: Kind) -> Self {
        Self {
            kind: kind as i32,
            ..self
        }
    }
    fn sorts(self, sorts: &[&str]) -> Self {
        Self {
            sorts: strings(sorts),
            ..self
        }
    }
    fn limit(self, limit: i32) -> Self {
        Self {
            limit: Some(limit),
            ..self
        }
    }
    fn offset(self, offset: i32) -> Self {
        Self { offset, ..self }
    }
}

pub fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}
