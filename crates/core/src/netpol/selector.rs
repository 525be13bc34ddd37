//! Label selectors (`matchLabels`, `matchExpressions`) as the Kubernetes API defines them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A selector that cannot be read; names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct SelectorError {
    /// `matchExpressions[2].operator`, ...
    pub field: String,
    /// What is wrong.
    pub why: String,
}

/// Whether `labels` match `selector` (an empty selector matches everything).
pub fn matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let mut by_expression = true;
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        let field = |f: &str| format!("matchExpressions[{i}].{f}");
        let holds = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(SelectorError {
                    field: field("values"),
                    why: format!("required for operator {}", e.operator),
                });
            }
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => !value.is_some_and(|v| values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => {
                return Err(SelectorError {
                    field: field("operator"),
                    why: format!("{other:?} is not In, NotIn, Exists or DoesNotExist"),
                });
            }
        };
        by_expression &= holds;
    }
    Ok(by_label && by_expression)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expression(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn selectors_match_as_the_api_says() {
        let pod = labels(&[("app", "web"), ("tier", "front")]);
        let by =
            |labels: &[(&str, &str)], expressions: Vec<LabelSelectorRequirement>| LabelSelector {
                match_labels: (!labels.is_empty()).then(|| self::tests::labels(labels)),
                match_expressions: (!expressions.is_empty()).then_some(expressions),
            };
        let cases = [
            (by(&[], vec![]), true),
            (by(&[("app", "web")], vec![]), true),
            (by(&[("app", "db")], vec![]), false),
            (
                by(&[], vec![expression("tier", "In", &["front", "back"])]),
                true,
            ),
            (
                by(&[], vec![expression("tier", "NotIn", &["front"])]),
                false,
            ),
            (by(&[], vec![expression("env", "NotIn", &["prod"])]), true),
            (by(&[], vec![expression("app", "Exists", &[])]), true),
            (by(&[], vec![expression("app", "DoesNotExist", &[])]), false),
            (
                by(&[("app", "web")], vec![expression("tier", "In", &["back"])]),
                false,
            ),
        ];
        for (selector, want) in cases {
            assert_eq!(matches(&selector, &pod), Ok(want), "{selector:?}");
        }
    }

    #[test]
    fn a_bad_expression_names_its_field() {
        let selector = LabelSelector {
            match_expressions: Some(vec![
                expression("app", "Exists", &[]),
                expression("app", "Like", &["w*"]),
            ]),
            ..LabelSelector::default()
        };
        let err = matches(&selector, &BTreeMap::new()).unwrap_err();
        assert_eq!(err.field, "matchExpressions[1].operator");
        let selector = LabelSelector {
            match_expressions: Some(vec![expression("app", "In", &[])]),
            ..LabelSelector::default()
        };
        assert_eq!(
            matches(&selector, &BTreeMap::new()).unwrap_err().field,
            "matchExpressions[0].values"
        );
    }
}
