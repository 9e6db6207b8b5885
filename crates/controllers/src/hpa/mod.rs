//! The HorizontalPodAutoscaler (upstream `horizontal-pod-autoscaler-controller`): so far
//! its replica arithmetic ([`replicas`]); the controller loop (scale subresource,
//! `metrics.k8s.io`, status conditions) is not built yet and it is not registered.

pub mod replicas;
