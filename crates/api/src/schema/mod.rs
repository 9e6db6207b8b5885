//! Every Kubernetes API type as data: its fields' protobuf numbers, JSON names and types, and
//! the merge metadata upstream declares on the Go types.
//!
//! One generated table ([`generated::MESSAGES`], from `tools/gen_schema.py`) serves three
//! readers: the protobuf codec (field numbers), strategic merge patch (`patchStrategy`,
//! `patchMergeKey`) and server-side apply (`listType`, `listMapKey`, `mapType`,
//! `structType`). A kind's root type is found with [`for_kind`]; a field's type with
//! [`Message::field`] and [`Kind::message`].

#[rustfmt::skip]
mod generated;

/// A message (Go struct): its full protobuf name (`api.core.v1.Pod`) and fields.
#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
    /// `+structType=atomic`: replaced as a whole by apply, never merged field by field.
    pub atomic: bool,
}

impl Message {
    /// The field with this JSON name, looking into inline fields (whose own fields are
    /// the parent's in JSON).
    pub fn field(&self, json: &str) -> Option<&'static Field> {
        self.fields.iter().find_map(|f| {
            if f.inline {
                f.message().and_then(|m| m.field(json))
            } else if f.json == json {
                Some(f)
            } else {
                None
            }
        })
    }
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    pub tag: u32,
    /// The JSON (and YAML) name.
    pub json: &'static str,
    pub kind: Kind,
    /// A list.
    pub repeated: bool,
    /// `+patchStrategy`: how strategic merge patch combines this field.
    pub strategy: Strategy,
    /// `+patchMergeKey`: the key identifying list elements for strategic merge patch.
    pub merge_key: Option<&'static str>,
    /// `+listType`: how server-side apply treats this list.
    pub list_type: ListType,
    /// `+listMapKey`: the keys of a `map` list.
    pub map_keys: &'static [&'static str],
    /// `+mapType=atomic`: a map replaced as a whole.
    pub atomic: bool,
    /// A Go struct embedded with `json:",inline"`: a message of its own on the wire, its
    /// fields spread among the parent's in JSON (`Volume`'s `VolumeSource`).
    pub inline: bool,
}

impl Field {
    pub(crate) const PLAIN: Field = Field {
        tag: 0,
        json: "",
        kind: Kind::String,
        repeated: false,
        strategy: Strategy::Default,
        merge_key: None,
        list_type: ListType::Unspecified,
        map_keys: &[],
        atomic: false,
        inline: false,
    };

    /// The message type of this field (or of its list elements or map values).
    pub fn message(&self) -> Option<&'static Message> {
        self.kind.message()
    }
}

/// A field's value type.
#[derive(Debug)]
pub enum Kind {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Double,
    Message(&'static str),
    /// A map with string keys (entries are messages `{1: key, 2: value}`).
    Map(&'static Kind),
}

impl Kind {
    /// The message type of this kind (or of a map's values).
    pub fn message(&self) -> Option<&'static Message> {
        match self {
            Kind::Message(name) => message(name),
            Kind::Map(value) => value.message(),
            _ => None,
        }
    }
}

/// `+patchStrategy` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// No strategy declared: lists are replaced, maps merged.
    Default,
    Merge,
    Replace,
    RetainKeys,
    MergeRetainKeys,
}

impl Strategy {
    /// Lists with this strategy are merged element by element.
    pub fn merges(self) -> bool {
        matches!(self, Strategy::Merge | Strategy::MergeRetainKeys)
    }

    /// Fields absent from the patch are cleared (`retainKeys`).
    pub fn retains_keys(self) -> bool {
        matches!(self, Strategy::RetainKeys | Strategy::MergeRetainKeys)
    }
}

/// `+listType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Not declared: atomic for apply.
    Unspecified,
    Atomic,
    Set,
    Map,
}

/// Messages whose JSON form is not an object of their fields — scalars (times, durations,
/// quantities, int-or-string), string lists, and free-form JSON — so merges treat their values
/// as leaves.
pub fn is_opaque(name: &str) -> bool {
    matches!(
        name,
        "apimachinery.pkg.apis.meta.v1.Time"
            | "apimachinery.pkg.apis.meta.v1.MicroTime"
            | "apimachinery.pkg.apis.meta.v1.Duration"
            | "apimachinery.pkg.apis.meta.v1.Verbs"
            | "apimachinery.pkg.apis.meta.v1.FieldsV1"
            | "apimachinery.pkg.api.resource.Quantity"
            | "apimachinery.pkg.util.intstr.IntOrString"
            | "apimachinery.pkg.runtime.RawExtension"
            | "apiextensions_apiserver.pkg.apis.apiextensions.v1.Json"
            | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaProps"
            | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrArray"
            | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrBool"
            | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrStringArray"
    ) || name.ends_with(".ExtraValue")
}

/// The message with this full protobuf name.
pub fn message(name: &str) -> Option<&'static Message> {
    generated::MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| &generated::MESSAGES[i])
}

/// The protobuf package of an API group (`apps` → `api.apps`).
fn package(group: &str) -> String {
    match group {
        "" => "api.core".to_owned(),
        "apiextensions.k8s.io" => "apiextensions_apiserver.pkg.apis.apiextensions".to_owned(),
        "apiregistration.k8s.io" => "kube_aggregator.pkg.apis.apiregistration".to_owned(),
        "internal.apiserver.k8s.io" => "api.apiserverinternal".to_owned(),
        "meta.k8s.io" => "apimachinery.pkg.apis.meta".to_owned(),
        g => format!("api.{}", g.split('.').next().unwrap_or(g)),
    }
}

/// The root message of a built-in kind, e.g. `apps/v1` `Deployment` → `api.apps.v1.Deployment`.
pub fn for_kind(api_version: &str, kind: &str) -> Option<&'static Message> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    message(&format!("{}.{version}.{kind}", package(group)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_for_binary_search() {
        assert!(generated::MESSAGES
            .windows(2)
            .all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn knows_the_builtin_kinds() {
        let name = |v, k| for_kind(v, k).map(|m| m.name);
        assert_eq!(name("v1", "Namespace"), Some("api.core.v1.Namespace"));
        assert_eq!(
            name("apps/v1", "Deployment"),
            Some("api.apps.v1.Deployment")
        );
        assert_eq!(
            name("rbac.authorization.k8s.io/v1", "ClusterRole"),
            Some("api.rbac.v1.ClusterRole")
        );
        assert_eq!(
            name("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            Some("apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition")
        );
        assert_eq!(
            name("meta.k8s.io/v1", "Status"),
            Some("apimachinery.pkg.apis.meta.v1.Status")
        );
        assert_eq!(name("v1", "Nope"), None);
    }

    #[test]
    fn opaque_messages_exist() {
        for name in [
            "apimachinery.pkg.apis.meta.v1.Time",
            "apimachinery.pkg.api.resource.Quantity",
            "apiextensions_apiserver.pkg.apis.apiextensions.v1.Json",
            "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaProps",
        ] {
            assert!(message(name).is_some() && is_opaque(name), "{name}");
        }
    }

    #[test]
    fn carries_upstream_merge_markers() {
        let container = message("api.core.v1.Container").unwrap();
        let ports = container.field("ports").unwrap();
        assert_eq!(ports.strategy, Strategy::Merge);
        assert_eq!(ports.merge_key, Some("containerPort"));
        assert_eq!(ports.list_type, ListType::Map);
        assert_eq!(ports.map_keys, &["containerPort", "protocol"]);
        let spec = for_kind("v1", "Pod")
            .unwrap()
            .field("spec")
            .unwrap()
            .message()
            .unwrap();
        let volumes = spec.field("volumes").unwrap();
        assert_eq!(volumes.strategy, Strategy::MergeRetainKeys);
        assert!(volumes.strategy.merges() && volumes.strategy.retains_keys());
        assert_eq!(
            spec.field("containers").unwrap().message().unwrap().name,
            "api.core.v1.Container"
        );
        assert!(
            message("apimachinery.pkg.apis.meta.v1.LabelSelector")
                .unwrap()
                .atomic
        );
        // Inline structs: VolumeSource's fields are Volume's in JSON.
        let volume = message("api.core.v1.Volume").unwrap();
        assert_eq!(volume.field("emptyDir").unwrap().json, "emptyDir");
        assert!(volume.field("volumeSource").is_none());
        assert_eq!(
            message("api.core.v1.AwsElasticBlockStoreVolumeSource")
                .unwrap()
                .field("volumeID")
                .unwrap()
                .tag,
            1
        );
        let meta = message("apimachinery.pkg.apis.meta.v1.ObjectMeta").unwrap();
        assert_eq!(meta.field("finalizers").unwrap().list_type, ListType::Set);
        assert_eq!(
            meta.field("ownerReferences").unwrap().merge_key,
            Some("uid")
        );
    }
}
