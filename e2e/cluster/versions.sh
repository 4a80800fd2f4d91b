# shellcheck shell=bash
# shellcheck disable=SC2034 # sourced by the other scripts
# Pinned upstream versions of the e2e cluster, all built from source with Go.
#
# Kubernetes v1.37: the newest release line the Go module proxy serves. Since
# v1.35 the kubelet refuses to start on a cgroup v1 host unless the kubelet
# configuration says `failCgroupV1: false`; v1.37 still honours that override
# (removal of cgroup v1 support is planned for a later release). The build
# machines are cgroup v1-hybrid (v1 controllers, v2 only at
# /sys/fs/cgroup/unified), so the kubelet runs with `failCgroupV1: false` and
# `cgroupDriver: cgroupfs`. On a pure cgroup v2 host the same configuration
# works unchanged (the override is simply not needed there).
KUBERNETES_VERSION=v1.37.2
# etcd 3.7 is the client line Kubernetes v1.37 is built against.
ETCD_VERSION=v3.7.3
# containerd 2.x: Debian's containerd 1.6 is out of upstream support and far
# older than the runtimes Kubernetes v1.37 is tested with. containerd 2.4
# still supports cgroup v1 (deprecated, maintained upstream until at least
# 2029).
CONTAINERD_VERSION=v2.4.2
# runc 1.5: current line, cgroup v1 deprecated but supported.
RUNC_VERSION=v1.5.3
CNI_PLUGINS_VERSION=v1.10.0
HELM_VERSION=v3.22.0
# crictl (cri-tools): the CRI client of the runtime suite (e2e/runtime), which
# starts pods through containerd's CRI plugin the way the kubelet does. Same
# minor as Kubernetes; built from the Go module proxy like the rest.
CRI_TOOLS_VERSION=v1.37.0
# kube-router's network policy controller (firewall only) enforces
# NetworkPolicies in the test cluster, beside the bridge CNI; v2.1.0 is the
# only version the Go module proxy serves (it has reported security flaws:
# it runs only inside the local test cluster and never ships with imprint).
KUBE_ROUTER_VERSION=v2.1.0
# CoreDNS as the cluster's DNS (a pod, so that policies select it by labels);
# v1.15 is built against client-go v0.37, the cluster's line.
COREDNS_VERSION=v1.15.0
# kind, for e2e/kind (a two-node cluster of Docker containers); its node
# image is assembled from the components above (e2e/kind/node-image.sh).
KIND_VERSION=v0.33.0
