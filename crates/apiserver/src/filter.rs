//! Label and field selectors applied to lists and watches.

use rkube_api::fields::FieldSelector;
use rkube_api::labels::LabelSelector;
use rkube_api::resources::ResourceInfo;
use serde_json::Value;

use crate::error::ApiError;
use crate::watch_cache::CachedObject;

/// The selectors of one request.
#[derive(Debug, Clone)]
pub struct Filter {
    info: &'static ResourceInfo,
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    pub fn new(
        info: &'static ResourceInfo,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = labels
            .map(LabelSelector::parse)
            .transpose()
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .filter(|s| !s.is_empty());
        let fields = match fields {
            None => None,
            Some(f) => {
                let sel =
                    FieldSelector::parse(f).map_err(|e| ApiError::bad_request(e.to_string()))?;
                let sel = sel
                    .convert_for(info)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Some(sel).filter(|s| !s.is_empty())
            }
        };
        Ok(Filter {
            info,
            labels,
            fields,
        })
    }

    /// True when nothing is filtered.
    pub fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    /// Whether an object (as JSON) passes.
    pub fn matches_value(&self, obj: &Value) -> bool {
        if let Some(l) = &self.labels {
            if !l.matches(&crate::meta::labels(obj)) {
                return false;
            }
        }
        match &self.fields {
            Some(f) => f.matches_object(self.info, obj),
            None => true,
        }
    }

    /// Whether a stored object passes (parsed only when a selector needs it, and then
    /// only as far as the selectors read).
    pub fn matches_stored(&self, stored: &[u8]) -> bool {
        if self.is_empty() {
            return true;
        }
        match &self.fields {
            Some(f) => {
                let Some(part) = rkube_api::fields::selectable_part(self.info, stored) else {
                    return false;
                };
                f.matches_object(self.info, &part)
                    && self
                        .labels
                        .as_ref()
                        .is_none_or(|l| l.matches(&crate::meta::labels_of_stored(stored)))
            }
            None => serde_json::from_slice::<Value>(stored).is_ok_and(|v| self.matches_value(&v)),
        }
    }

    /// Whether a cached object passes (labels are pre-parsed in the cache).
    pub fn matches_cached(&self, obj: &CachedObject) -> bool {
        if let Some(l) = &self.labels {
            if !l.matches(obj.labels()) {
                return false;
            }
        }
        match &self.fields {
            Some(f) => obj
                .selectable(self.info)
                .is_some_and(|part| f.matches_object(self.info, part)),
            None => true,
        }
    }
}
