//! List queries: filters, sort criteria and pages, as seed 001 defines them.

use super::error::{FieldViolation, Violations};
use super::ids::EntityId;
use super::token::TokenKind;

/// Page size when the request gives none.
pub const DEFAULT_LIMIT: u16 = 20;
/// Largest page size.
pub const MAX_LIMIT: u16 = 1000;
/// Most `dagTags` one request may name.
pub const MAX_DAG_TAGS: usize = 100;
/// Most `sorts` one request may give: one per sortable field.
pub const MAX_SORTS: usize = SortField::ALL.len();

/// A field tokens can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortField {
    /// `name`.
    Name,
    /// `description`.
    Description,
    /// `createdAt`.
    CreatedAt,
    /// `updatedAt`.
    UpdatedAt,
    /// `tokenStartAt`: when the token becomes valid.
    TokenStartAt,
}

impl SortField {
    /// Every sortable field.
    pub const ALL: [Self; 5] = [
        Self::Name,
        Self::Description,
        Self::CreatedAt,
        Self::UpdatedAt,
        Self::TokenStartAt,
    ];

    /// The seed's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Description => "description",
            Self::CreatedAt => "createdAt",
            Self::UpdatedAt => "updatedAt",
            Self::TokenStartAt => "tokenStartAt",
        }
    }
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// One sort criterion, `fieldName:asc` or `fieldName:desc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SortSpec {
    /// What to sort by.
    pub field: SortField,
    /// Which way.
    pub direction: Direction,
}

impl SortSpec {
    /// Parses one criterion given in `field` (e.g. `sorts[1]`).
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        let invalid = || {
            let allowed: Vec<&str> = SortField::ALL.iter().map(|f| f.as_str()).collect();
            FieldViolation::new(
                field,
                format!(
                    "must be 'fieldName:asc' or 'fieldName:desc' with fieldName one of {}",
                    allowed.join(", ")
                ),
            )
        };
        let (name, direction) = value.split_once(':').ok_or_else(invalid)?;
        let field_kind = SortField::ALL
            .into_iter()
            .find(|f| f.as_str() == name)
            .ok_or_else(invalid)?;
        let direction = match direction {
            "asc" => Direction::Asc,
            "desc" => Direction::Desc,
            _ => return Err(invalid()),
        };
        Ok(Self {
            field: field_kind,
            direction,
        })
    }
}

/// Sort criteria in precedence order, each field at most once. Ties left
/// after all of them are broken by token id, ascending.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sorts(Vec<SortSpec>);

impl Sorts {
    /// Parses the `sorts` list.
    pub fn parse(values: &[String]) -> Result<Self, FieldViolation> {
        if values.len() > MAX_SORTS {
            return Err(FieldViolation::new(
                "sorts",
                format!("must have at most {MAX_SORTS} criteria"),
            ));
        }
        let mut specs: Vec<SortSpec> = Vec::with_capacity(values.len());
        for (i, value) in values.iter().enumerate() {
            let field = format!("sorts[{i}]");
            let spec = SortSpec::parse(&field, value)?;
            if specs.iter().any(|s| s.field == spec.field) {
                return Err(FieldViolation::new(
                    field,
                    format!("sorts by {} more than once", spec.field.as_str()),
                ));
            }
            specs.push(spec);
        }
        Ok(Self(specs))
    }

    /// The criteria, in precedence order.
    pub fn specs(&self) -> &[SortSpec] {
        &self.0
    }
}

/// Which slice of the matches to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    offset: u32,
    limit: u16,
}

impl Page {
    /// Parses `offset` (>= 0) and `limit` (0..=1000, default 20).
    pub fn parse(offset: i32, limit: Option<i32>) -> Result<Self, FieldViolation> {
        let offset = u32::try_from(offset)
            .map_err(|_| FieldViolation::new("offset", "must be at least 0"))?;
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(l) => u16::try_from(l)
                .ok()
                .filter(|l| *l <= MAX_LIMIT)
                .ok_or_else(|| {
                    FieldViolation::new("limit", format!("must be between 0 and {MAX_LIMIT}"))
                })?,
        };
        Ok(Self { offset, limit })
    }

    /// How many matches to skip.
    pub fn offset(self) -> u32 {
        self.offset
    }

    /// How many matches to return at most; 0 means only count them.
    pub fn limit(self) -> u16 {
        self.limit
    }
}

/// The filters of seed 001; all of them must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListFilter {
    /// Tokens with a role on this workspace.
    pub workspace_id: Option<EntityId>,
    /// Tokens with a role on this deployment, or on a DAG or tag inside it.
    pub deployment_id: Option<EntityId>,
    /// Tokens with a role on this DAG.
    pub dag_id: Option<EntityId>,
    /// Tokens with a role on any of these DAG tags (deduplicated, sorted).
    pub dag_tags: Vec<EntityId>,
    /// Only ORGANIZATION tokens.
    pub only_organization_tokens: bool,
    /// Only tokens of this kind.
    pub kind: Option<TokenKind>,
}

/// A List request as the client sent it, enums already decoded.
#[derive(Debug, Clone, Default)]
pub struct ListInput<'a> {
    /// `workspaceId`; empty when unset.
    pub workspace_id: &'a str,
    /// `deploymentId`; empty when unset.
    pub deployment_id: &'a str,
    /// `dagId`; empty when unset.
    pub dag_id: &'a str,
    /// `dagTags`.
    pub dag_tags: &'a [String],
    /// `includeOnlyOrganizationTokens`.
    pub only_organization_tokens: bool,
    /// `kind`; `None` for every kind.
    pub kind: Option<TokenKind>,
    /// `offset`.
    pub offset: i32,
    /// `limit`; `None` when absent.
    pub limit: Option<i32>,
    /// `sorts`.
    pub sorts: &'a [String],
}

/// A validated List query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// What to match.
    pub filter: ListFilter,
    /// In which order.
    pub sorts: Sorts,
    /// Which slice.
    pub page: Page,
}

impl ListQuery {
    /// Validates a List request, reporting every violation at once.
    pub fn parse(input: &ListInput<'_>) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Violations::default();
        let workspace_id = v.check(filter("workspaceId", input.workspace_id));
        let deployment_id = v.check(filter("deploymentId", input.deployment_id));
        let dag_id = v.check(filter("dagId", input.dag_id));
        let dag_tags = v.check(parse_dag_tags(input.dag_tags));
        let sorts = v.check(Sorts::parse(input.sorts));
        let page = v.check(Page::parse(input.offset, input.limit));
        match (workspace_id, deployment_id, dag_id, dag_tags, sorts, page) {
            (
                Some(workspace_id),
                Some(deployment_id),
                Some(dag_id),
                Some(dag_tags),
                Some(sorts),
                Some(page),
            ) if v.is_empty() => Ok(Self {
                filter: ListFilter {
                    workspace_id,
                    deployment_id,
                    dag_id,
                    dag_tags,
                    only_organization_tokens: input.only_organization_tokens,
                    kind: input.kind,
                },
                sorts,
                page,
            }),
            _ => Err(v.into_vec()),
        }
    }
}

/// An optional entity filter: the empty string means none.
fn filter(field: &str, value: &str) -> Result<Option<EntityId>, FieldViolation> {
    if value.is_empty() {
        Ok(None)
    } else {
        EntityId::parse_filter(field, value).map(Some)
    }
}

fn parse_dag_tags(values: &[String]) -> Result<Vec<EntityId>, FieldViolation> {
    if values.len() > MAX_DAG_TAGS {
        return Err(FieldViolation::new(
            "dagTags",
            format!("must have at most {MAX_DAG_TAGS} tags"),
        ));
    }
    let mut tags = values
        .iter()
        .enumerate()
        .map(|(i, t)| EntityId::parse_filter(&format!("dagTags[{i}]"), t))
        .collect::<Result<Vec<_>, _>>()?;
    tags.sort();
    tags.dedup();
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_sort_key_both_ways() {
        for field in SortField::ALL {
            for (word, direction) in [("asc", Direction::Asc), ("desc", Direction::Desc)] {
                let spec =
                    SortSpec::parse("sorts[0]", &format!("{}:{word}", field.as_str())).unwrap();
                assert_eq!(spec, SortSpec { field, direction });
            }
        }
    }

    #[test]
    fn bad_sorts_name_their_index() {
        for bad in [
            "name",
            "name:",
            ":asc",
            "name:sideways",
            "Name:asc",
            "name:ASC",
            "name:asc:x",
            "id:asc",
            "tokenStartAt :asc",
            "",
        ] {
            let err = Sorts::parse(&strings(&["createdAt:desc", bad])).unwrap_err();
            assert_eq!(err.field, "sorts[1]", "{bad}");
        }
        let dup = Sorts::parse(&strings(&["name:asc", "name:desc"])).unwrap_err();
        assert_eq!(dup.field, "sorts[1]");
        let many = strings(&["name:asc"; 6]);
        assert_eq!(Sorts::parse(&many).unwrap_err().field, "sorts");
    }

    #[test]
    fn multi_key_sorts_keep_their_order() {
        let sorts = Sorts::parse(&strings(&["updatedAt:desc", "name:asc"])).unwrap();
        let fields: Vec<SortField> = sorts.specs().iter().map(|s| s.field).collect();
        assert_eq!(fields, [SortField::UpdatedAt, SortField::Name]);
    }

    #[test]
    fn page_bounds() {
        assert_eq!(Page::parse(0, None).unwrap().limit(), DEFAULT_LIMIT);
        assert_eq!(Page::parse(0, Some(0)).unwrap().limit(), 0);
        assert_eq!(Page::parse(0, Some(1000)).unwrap().limit(), 1000);
        assert_eq!(Page::parse(0, Some(1001)).unwrap_err().field, "limit");
        assert_eq!(Page::parse(0, Some(-1)).unwrap_err().field, "limit");
        assert_eq!(Page::parse(-1, None).unwrap_err().field, "offset");
        assert_eq!(
            Page::parse(i32::MAX, None).unwrap().offset(),
            i32::MAX as u32
        );
    }

    #[test]
    fn query_collects_all_violations() {
        let sorts = strings(&["bogus"]);
        let input = ListInput {
            workspace_id: " ws",
            offset: -1,
            limit: Some(5000),
            sorts: &sorts,
            ..ListInput::default()
        };
        let fields: Vec<String> = ListQuery::parse(&input)
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["workspaceId", "sorts[0]", "offset"]);
    }

    #[test]
    fn limits_are_inclusive() {
        let every: Vec<String> = SortField::ALL
            .iter()
            .map(|f| format!("{}:desc", f.as_str()))
            .collect();
        assert_eq!(Sorts::parse(&every).unwrap().specs().len(), MAX_SORTS);
        let tags: Vec<String> = (0..MAX_DAG_TAGS).map(|i| format!("t{i}")).collect();
        let q = ListQuery::parse(&ListInput {
            dag_tags: &tags,
            ..ListInput::default()
        })
        .unwrap();
        assert_eq!(q.filter.dag_tags.len(), MAX_DAG_TAGS);
    }

    #[test]
    fn a_valid_query_keeps_every_field() {
        let tags = strings(&["nightly"]);
        let sorts = strings(&["name:asc"]);
        let q = ListQuery::parse(&ListInput {
            workspace_id: "ws-1",
            deployment_id: "dep-1",
            dag_id: "etl",
            dag_tags: &tags,
            only_organization_tokens: true,
            kind: Some(TokenKind::DirectAccess),
            offset: 40,
            limit: Some(7),
            sorts: &sorts,
        })
        .unwrap();
        let text = |v: &Option<EntityId>| v.as_ref().map(|e| e.as_str().to_owned());
        assert_eq!(text(&q.filter.workspace_id).as_deref(), Some("ws-1"));
        assert_eq!(text(&q.filter.deployment_id).as_deref(), Some("dep-1"));
        assert_eq!(text(&q.filter.dag_id).as_deref(), Some("etl"));
        assert_eq!(q.filter.dag_tags[0].as_str(), "nightly");
        assert!(q.filter.only_organization_tokens);
        assert_eq!(q.filter.kind, Some(TokenKind::DirectAccess));
        assert_eq!((q.page.offset(), q.page.limit()), (40, 7));
        assert_eq!(
            q.sorts.specs(),
            [SortSpec {
                field: SortField::Name,
                direction: Direction::Asc
            }]
        );
        let unset = ListQuery::parse(&ListInput::default()).unwrap();
        assert_eq!(unset.filter, ListFilter::default());
    }

    #[test]
    fn dag_tags_are_deduplicated_and_bounded() {
        let tags = strings(&["b", "a", "b"]);
        let q = ListQuery::parse(&ListInput {
            dag_tags: &tags,
            ..ListInput::default()
        })
        .unwrap();
        let got: Vec<&str> = q.filter.dag_tags.iter().map(|t| t.as_str()).collect();
        assert_eq!(got, ["a", "b"]);
        let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        let err = ListQuery::parse(&ListInput {
            dag_tags: &many,
            ..ListInput::default()
        })
        .unwrap_err();
        assert_eq!(err[0].field, "dagTags");
    }
}
