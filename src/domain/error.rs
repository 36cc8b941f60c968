//! The one error the domain produces: a request field that breaks a rule.

use std::fmt;

/// One violated constraint on one request field, named as clients spell it
/// (the lowerCamelCase JSON name, e.g. `tokenExpiryPeriodInDays`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The offending field's JSON name, with an index for repeated fields.
    pub field: String,
    /// What is wrong with it; never contains the field's value.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field` described by `description`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

impl std::error::Error for FieldViolation {}

/// Checks a free-text value's length in characters and refuses control
/// characters other than tab and newline (which break logs and terminals).
pub(crate) fn check_text(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), FieldViolation> {
    let chars = value.chars().count();
    if chars < min {
        let what = if min == 1 {
            "is required".to_owned()
        } else {
            format!("must be at least {min} characters")
        };
        return Err(FieldViolation::new(field, what));
    }
    if chars > max {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldViolation::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Collects every violation of a request, so one response names them all.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Keeps the value of `result`, or records its violation and yields `None`.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        result.map_err(|v| self.0.push(v)).ok()
    }

    /// Records a violation.
    pub fn push(&mut self, violation: FieldViolation) {
        self.0.push(violation);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The recorded violations.
    pub fn into_vec(self) -> Vec<FieldViolation> {
        self.0
    }
}
