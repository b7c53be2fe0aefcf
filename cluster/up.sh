#!/usr/bin/env bash
# Starts the local Kubernetes cluster, or reuses the one that is running:
# control plane and node as host processes (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd, kubelet, kube-proxy,
# kube-router, the image registry), then CoreDNS, metrics-server,
# local-path-provisioner and Traefik as pods. Prints the kubeconfig path
# and the time taken.
#
# Idempotent: every component is started only if its recorded process is
# not running, so a second run reuses a running cluster and restarts only
# what has died. A lock keeps two runs from starting two copies.
#
# Usage: cluster/up.sh
# Environment: see cluster/lib.sh (state and cache directories, addresses,
# ports) and CLUSTER_IMAGES=local|upstream.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  "") ;;
  -h | --help)
    sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

t0=$(_dp_now)
elapsed() { awk -v a="$t0" -v b="$(_dp_now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- prerequisites ----------------------------------------------------------

# Debian packages the node needs, each with the command (or file) it provides.
node_packages=(containerd=containerd runc=runc containernetworking-plugins=/usr/lib/cni/bridge
  iptables=iptables ipset=ipset conntrack=conntrack openssl=openssl curl=curl
  iproute2=ss util-linux=flock)

# cidr_in_use CIDR: a route other than the default one and ours covers or
# lies inside CIDR.
cidr_in_use() {
  { ip -o route show match "$1"; ip -o route show root "$1"; } 2>/dev/null |
    grep -v -e '^default ' -e " dev $CLUSTER_BRIDGE " | grep -q .
}

check_prerequisites() {
  require_root
  [[ $(uname -s) == Linux ]] || die "the cluster runs on Linux only"
  ensure_packages "${node_packages[@]}"
  local cni
  for cni in bridge host-local loopback portmap; do
    [[ -x $CNI_BIN_DIR/$cni ]] || die "CNI plugin $CNI_BIN_DIR/$cni is missing: apt-get install containernetworking-plugins"
  done
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] ||
    die "the kernel lacks bridge netfilter (br_netfilter), which pod networking and NetworkPolicy need: modprobe br_netfilter"
  [[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] || die "no cgroup hierarchy is mounted at /sys/fs/cgroup"
  iptables -w -S FORWARD >/dev/null 2>&1 || die "iptables does not work here (iptables -S FORWARD failed): the kernel needs netfilter"
  ipset list -n >/dev/null 2>&1 || die "ipset does not work here (ipset list failed): the kernel needs ip_set, which kube-router's NetworkPolicy enforcement uses"

  # Addresses: the node's, and the pod and service ranges, must be free
  # unless they are this cluster's own.
  if ! ip link show "$CLUSTER_NODE_LINK" >/dev/null 2>&1; then
    ip -o addr show | grep -q " inet $CLUSTER_NODE_IP/" &&
      die "address $CLUSTER_NODE_IP is already on an interface: set CLUSTER_NODE_IP to a free private address"
    cidr_in_use "$CLUSTER_POD_CIDR" && die "pod range $CLUSTER_POD_CIDR overlaps a route of this host: set CLUSTER_POD_CIDR"
    cidr_in_use "$CLUSTER_SERVICE_CIDR" && die "service range $CLUSTER_SERVICE_CIDR overlaps a route of this host: set CLUSTER_SERVICE_CIDR"
  fi

  # Ports of the components about to start; a running one holds its own.
  local -A component_ports=(
    [etcd]="2379 2380 2381"
    [kube-apiserver]=$CLUSTER_APISERVER_PORT
    [kube-controller-manager]=10257
    [kube-scheduler]=10259
    [kubelet]="10250 10248"
    [kube-proxy]="10249 10256"
    [registry]=$CLUSTER_REGISTRY_PORT
  )
  local name port
  for name in "${!component_ports[@]}"; do
    running "$name" && continue
    for port in ${component_ports[$name]}; do
      port_in_use "$port" && die "port $port (for $name) is in use: $(ss -Hltnp "sport = :$port" | awk '{print $NF}' | head -n 1); stop that process or, for the API server, registry or ingress, set CLUSTER_APISERVER_PORT / CLUSTER_REGISTRY_PORT / CLUSTER_INGRESS_*_PORT"
    done
  done
  if ! running kube-apiserver; then
    for port in "$CLUSTER_INGRESS_HTTP_PORT" "$CLUSTER_INGRESS_HTTPS_PORT" "$CLUSTER_INGRESS_ADMIN_PORT"; do
      port_in_use "$port" && die "port $port (for the ingress controller) is in use: $(ss -Hltnp "sport = :$port" | awk '{print $NF}' | head -n 1); set CLUSTER_INGRESS_HTTP_PORT / CLUSTER_INGRESS_HTTPS_PORT / CLUSTER_INGRESS_ADMIN_PORT"
    done
  fi
  return 0
}

# --- images -----------------------------------------------------------------

image() { # image NAME: the reference the manifests use
  local name=$1 upstream
  if [[ $CLUSTER_IMAGES == upstream ]]; then
    upstream=UPSTREAM_${name^^}_IMAGE
    upstream=${upstream//-/_}
    printf '%s\n' "${!upstream}"
    return
  fi
  case $name in
    pause) printf 'dataplatform-cluster/pause:%s\n' "$PAUSE_VERSION" ;;
    helper) printf 'dataplatform-cluster/helper:bookworm\n' ;;
    coredns) printf 'dataplatform-cluster/coredns:%s\n' "$COREDNS_VERSION" ;;
    metrics-server) printf 'dataplatform-cluster/metrics-server:%s\n' "$METRICS_SERVER_VERSION" ;;
    local-path-provisioner) printf 'dataplatform-cluster/local-path-provisioner:%s\n' "$LOCAL_PATH_PROVISIONER_VERSION" ;;
    traefik) printf 'dataplatform-cluster/traefik:%s\n' "$TRAEFIK_VERSION" ;;
    *) die "no image named $name" ;;
  esac
}

# --- configuration and PKI --------------------------------------------------

# fill TEMPLATE [NAME=VALUE...]: TEMPLATE with each @NAME@ replaced by the
# VALUE given for NAME here, or else by the shell variable NAME.
fill() {
  local template=$1 pair name value script=(-e '')
  shift
  local -A given=()
  for pair in "$@"; do given[${pair%%=*}]=${pair#*=}; done
  while read -r name; do
    if [[ -v "given[$name]" ]]; then
      value=${given[$name]}
    elif [[ -v $name ]]; then
      value=${!name}
    else
      die "$template: no value for @$name@"
    fi
    # Literal in sed's replacement: backslashes, the delimiter and &.
    value=${value//\\/\\\\}
    value=${value//|/\\|}
    value=${value//&/\\&}
    script+=(-e "s|@$name@|$value|g")
  done < <(grep -o '@[A-Z][A-Z0-9_]*@' "$template" | sort -u | tr -d @)
  sed "${script[@]}" "$template"
}

write_kubeadm_config() { fill "$CLUSTER_DIR/config/kubeadm.yaml" >"$CONFIG_DIR/kubeadm.yaml"; }

# The settings the certificates embed; data kept from a run with other
# settings would not match them.
pki_settings() { printf '%s\n' "$CLUSTER_NODE_NAME" "$CLUSTER_NODE_IP" "$CLUSTER_SERVICE_CIDR" "$CLUSTER_APISERVER_PORT" "$CLUSTER_DOMAIN"; }

make_pki() {
  if [[ -f $PKI_DIR/ca.crt && -f $KUBECONFIG_DIR/kube-router.conf ]]; then
    [[ "$(cat "$PKI_DIR/.settings" 2>/dev/null)" == "$(pki_settings)" ]] ||
      die "the kept cluster data in $CLUSTER_DATA_DIR was made for other addresses or names: run 'make cluster-down' (without KEEP_DATA) first"
    return 0
  fi
  local kubeadm=$CLUSTER_BIN/kubeadm log=$CLUSTER_LOGS/pki.log
  mkdir -p "$PKI_DIR" "$KUBECONFIG_DIR"
  chmod 700 "$CLUSTER_DATA_DIR"
  {
    # Cluster CA, API server, front proxy, etcd and service-account keys;
    # then kubeconfigs for the admin, the controller-manager, the scheduler
    # and the kubelet (system:node:<name>, for the Node authorizer).
    "$kubeadm" init phase certs all --config "$CONFIG_DIR/kubeadm.yaml"
    "$kubeadm" init phase kubeconfig all --config "$CONFIG_DIR/kubeadm.yaml" --kubeconfig-dir "$KUBECONFIG_DIR"
    # Identities RBAC already knows (system:kube-proxy -> system:node-proxier)
    # or that 00-bootstrap.yaml binds (system:kube-router).
    "$kubeadm" kubeconfig user --config "$CONFIG_DIR/kubeadm.yaml" --client-name system:kube-proxy >"$KUBECONFIG_DIR/kube-proxy.conf.tmp"
    "$kubeadm" kubeconfig user --config "$CONFIG_DIR/kubeadm.yaml" --client-name system:kube-router >"$KUBECONFIG_DIR/kube-router.conf.tmp"
  } >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "generating the PKI and kubeconfigs failed (log: $log)"; }

  # The kubelet's serving certificate, signed by the cluster CA, so the API
  # server and metrics-server verify the kubelet instead of trusting any
  # certificate it shows.
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI_DIR/kubelet.key" \
    -subj "/O=system:nodes/CN=system:node:$CLUSTER_NODE_NAME" -out "$PKI_DIR/kubelet.csr" 2>>"$log"
  openssl x509 -req -in "$PKI_DIR/kubelet.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 365 -out "$PKI_DIR/kubelet.crt" \
    -extfile <(printf 'subjectAltName=IP:%s,DNS:%s\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
      "$CLUSTER_NODE_IP" "$CLUSTER_NODE_NAME") 2>>"$log"
  rm -f "$PKI_DIR/kubelet.csr"
  chmod 600 "$PKI_DIR/kubelet.key"
  mv "$KUBECONFIG_DIR/kube-proxy.conf.tmp" "$KUBECONFIG_DIR/kube-proxy.conf"
  mv "$KUBECONFIG_DIR/kube-router.conf.tmp" "$KUBECONFIG_DIR/kube-router.conf"
  pki_settings >"$PKI_DIR/.settings"
  info "PKI and kubeconfigs in $CLUSTER_DATA_DIR"
}

# The host components' configuration files, from the templates in config/.
write_configs() {
  local templates=$CLUSTER_DIR/config pause_image host name
  pause_image=$(image pause)
  fill "$templates/containerd.toml" PAUSE_IMAGE="$pause_image" >"$CONFIG_DIR/containerd.toml"

  # The local registry speaks plain HTTP on loopback.
  for host in "$CLUSTER_REGISTRY" "localhost:$CLUSTER_REGISTRY_PORT"; do
    mkdir -p "$CONFIG_DIR/registry-hosts/$host"
    fill "$templates/registry-hosts.toml" >"$CONFIG_DIR/registry-hosts/$host/hosts.toml"
  done

  mkdir -p "$CNI_CONF_DIR"
  fill "$templates/10-dataplatform.conflist" >"$CNI_CONF_DIR/10-dataplatform.conflist"

  for name in kubelet.yaml kube-proxy.yaml registry.yaml; do
    fill "$templates/$name" >"$CONFIG_DIR/$name"
  done
}

# --- host networking --------------------------------------------------------

save_sysctls() {
  local saved=$CLUSTER_RUN_DIR/sysctl.saved key value
  [[ -f $saved ]] && return 0
  for key in "${CLUSTER_SYSCTLS[@]}"; do
    value=$(sysctl -n "$key" 2>/dev/null) || continue
    printf '%s=%s\n' "$key" "$value"
  done >"$saved.tmp"
  mv "$saved.tmp" "$saved"
}

setup_network() {
  save_sysctls
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
  if ! ip link show "$CLUSTER_NODE_LINK" >/dev/null 2>&1; then
    ip link add "$CLUSTER_NODE_LINK" type bridge
  fi
  ip addr show dev "$CLUSTER_NODE_LINK" | grep -q " $CLUSTER_NODE_IP/" || ip addr add "$CLUSTER_NODE_IP/32" dev "$CLUSTER_NODE_LINK"
  ip link set "$CLUSTER_NODE_LINK" up

  # The Docker engine sets the FORWARD policy to DROP. Pod traffic is
  # accepted at the end of FORWARD, after the chains kube-router (policy)
  # and kube-proxy insert at its top, so a NetworkPolicy still decides
  # first.
  if ! iptables -w -S DP-CLUSTER-FORWARD >/dev/null 2>&1; then
    iptables -w -N DP-CLUSTER-FORWARD
    iptables -w -A DP-CLUSTER-FORWARD -i "$CLUSTER_BRIDGE" -j ACCEPT
    iptables -w -A DP-CLUSTER-FORWARD -o "$CLUSTER_BRIDGE" -j ACCEPT
  fi
  iptables -w -C FORWARD -j DP-CLUSTER-FORWARD 2>/dev/null || iptables -w -A FORWARD -j DP-CLUSTER-FORWARD
}

# --- components ---------------------------------------------------------------

bin() { printf '%s/%s\n' "$CLUSTER_BIN" "$1"; }

start_etcd() {
  running etcd && return 0
  mkdir -p "$CLUSTER_DATA_DIR/etcd"
  chmod 700 "$CLUSTER_DATA_DIR/etcd"
  local pki=$PKI_DIR/etcd
  spawn etcd "$(bin etcd)" --name "$CLUSTER_NODE_NAME" \
    --data-dir "$CLUSTER_DATA_DIR/etcd" \
    --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
    --listen-peer-urls https://127.0.0.1:2380 --initial-advertise-peer-urls https://127.0.0.1:2380 \
    --initial-cluster "$CLUSTER_NODE_NAME=https://127.0.0.1:2380" \
    --listen-metrics-urls http://127.0.0.1:2381 \
    --cert-file "$pki/server.crt" --key-file "$pki/server.key" --trusted-ca-file "$pki/ca.crt" --client-cert-auth \
    --peer-cert-file "$pki/peer.crt" --peer-key-file "$pki/peer.key" --peer-trusted-ca-file "$pki/ca.crt" --peer-client-cert-auth \
    --snapshot-count 10000
}

start_apiserver() {
  running kube-apiserver && return 0
  local pki=$PKI_DIR
  spawn kube-apiserver "$(bin kube-apiserver)" \
    --advertise-address "$CLUSTER_NODE_IP" --bind-address "$CLUSTER_NODE_IP" --secure-port "$CLUSTER_APISERVER_PORT" \
    --etcd-servers https://127.0.0.1:2379 --etcd-cafile "$pki/etcd/ca.crt" \
    --etcd-certfile "$pki/apiserver-etcd-client.crt" --etcd-keyfile "$pki/apiserver-etcd-client.key" \
    --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-cluster-ip-range "$CLUSTER_SERVICE_CIDR" --allow-privileged=true \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction,PodSecurity \
    --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
    --enable-aggregator-routing=true --profiling=false
}

start_controller_manager() {
  running kube-controller-manager && return 0
  local conf=$KUBECONFIG_DIR/controller-manager.conf pki=$PKI_DIR
  spawn kube-controller-manager "$(bin kube-controller-manager)" \
    --kubeconfig "$conf" --authentication-kubeconfig "$conf" --authorization-kubeconfig "$conf" \
    --bind-address 127.0.0.1 --leader-elect=false \
    --client-ca-file "$pki/ca.crt" --requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --root-ca-file "$pki/ca.crt" --service-account-private-key-file "$pki/sa.key" \
    --use-service-account-credentials=true \
    --allocate-node-cidrs=true --cluster-cidr "$CLUSTER_POD_CIDR" --node-cidr-mask-size 24 \
    --service-cluster-ip-range "$CLUSTER_SERVICE_CIDR" --cluster-name "$CLUSTER_NAME" --profiling=false
}

start_scheduler() {
  running kube-scheduler && return 0
  local conf=$KUBECONFIG_DIR/scheduler.conf
  spawn kube-scheduler "$(bin kube-scheduler)" \
    --kubeconfig "$conf" --authentication-kubeconfig "$conf" --authorization-kubeconfig "$conf" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false
}

start_containerd() {
  running containerd && return 0
  mkdir -p "$CLUSTER_STATE_DIR/containerd" "$CLUSTER_RUN_DIR/containerd"
  spawn containerd "$(command -v containerd)" --config "$CONFIG_DIR/containerd.toml"
}

ctr_k8s() { ctr --address "$CONTAINERD_SOCKET" --namespace k8s.io "$@"; }

import_images() {
  [[ $CLUSTER_IMAGES == local ]] || return 0
  local archive=$CLUSTER_IMAGE_DIR/images.tar name absent=false have
  have=$(ctr_k8s images ls -q)
  for name in pause helper coredns metrics-server local-path-provisioner traefik; do
    grep -qx "docker.io/$(image "$name")" <<<"$have" || absent=true
  done
  [[ $absent == true ]] || return 0
  [[ -s $archive ]] || die "no image archive at $archive: run cluster/build.sh"
  ctr_k8s images import "$archive" >"$CLUSTER_LOGS/images-import.log" 2>&1 ||
    { tail -n 20 "$CLUSTER_LOGS/images-import.log" >&2; die "importing the images into containerd failed"; }
}

start_kubelet() {
  running kubelet && return 0
  mkdir -p "$CLUSTER_STATE_DIR/kubelet" "$CLUSTER_STATE_DIR/pod-logs"
  spawn kubelet "$(bin kubelet)" --config "$CONFIG_DIR/kubelet.yaml" \
    --kubeconfig "$KUBECONFIG_DIR/kubelet.conf" --root-dir "$CLUSTER_STATE_DIR/kubelet" \
    --hostname-override "$CLUSTER_NODE_NAME" --node-ip "$CLUSTER_NODE_IP" \
    --cert-dir "$CLUSTER_STATE_DIR/kubelet/pki"
}

start_kube_proxy() {
  running kube-proxy && return 0
  spawn kube-proxy "$(bin kube-proxy)" --config "$CONFIG_DIR/kube-proxy.yaml"
}

start_kube_router() {
  running kube-router && return 0
  # NetworkPolicy only: pod routing is the bridge's and Services are
  # kube-proxy's. Health and metrics ports off: nothing more listens.
  spawn kube-router "$(bin kube-router)" --kubeconfig "$KUBECONFIG_DIR/kube-router.conf" \
    --hostname-override "$CLUSTER_NODE_NAME" \
    --run-firewall=true --run-router=false --run-service-proxy=false \
    --service-cluster-ip-range "$CLUSTER_SERVICE_CIDR" \
    --health-port 0 --metrics-port 0
}

start_registry() {
  running registry && return 0
  mkdir -p "$CLUSTER_DATA_DIR/registry"
  # No trace exporter: it would try to reach a collector.
  OTEL_TRACES_EXPORTER=none spawn registry "$(bin registry)" serve "$CONFIG_DIR/registry.yaml"
}

# --- readiness ----------------------------------------------------------------

etcd_healthy() { curl -sf http://127.0.0.1:2381/health | grep -q '"health":"true"'; }
apiserver_ready() { curl -sf --cacert "$PKI_DIR/ca.crt" "https://$CLUSTER_NODE_IP:$CLUSTER_APISERVER_PORT/readyz" >/dev/null; }
containerd_up() { ctr --address "$CONTAINERD_SOCKET" version >/dev/null; }
registry_up() { curl -sf "http://$CLUSTER_REGISTRY/v2/" >/dev/null; }
node_ready() {
  [[ $(kctl get node "$CLUSTER_NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}
kube_proxy_up() { curl -sf http://127.0.0.1:10256/healthz >/dev/null; }
# kube-router's firewall chains exist once its first sync has run.
kube_router_synced() { iptables -w -S KUBE-ROUTER-FORWARD >/dev/null 2>&1; }

render() { # render FILE: a manifest with this cluster's values filled in
  fill "$1" DNS_IP="$CLUSTER_DNS_IP" DNS_UPSTREAM="$CLUSTER_DNS_UPSTREAM" STORAGE_DIR="$CLUSTER_DATA_DIR/storage" \
    INGRESS_HTTP_PORT="$CLUSTER_INGRESS_HTTP_PORT" INGRESS_HTTPS_PORT="$CLUSTER_INGRESS_HTTPS_PORT" \
    INGRESS_ADMIN_PORT="$CLUSTER_INGRESS_ADMIN_PORT" COREDNS_IMAGE="$(image coredns)" \
    METRICS_SERVER_IMAGE="$(image metrics-server)" LOCAL_PATH_PROVISIONER_IMAGE="$(image local-path-provisioner)" \
    TRAEFIK_IMAGE="$(image traefik)" HELPER_IMAGE="$(image helper)"
}

# The admin kubeconfig's group is bound to cluster-admin here, so this one
# file goes in with the system:masters credentials, as soon as the API
# server answers; everything after uses the admin kubeconfig.
apply_bootstrap_rbac() {
  local log=$CLUSTER_LOGS/addons.log
  render "$CLUSTER_DIR/manifests/00-bootstrap.yaml" |
    "$CLUSTER_BIN/kubectl" --kubeconfig "$KUBECONFIG_DIR/super-admin.conf" apply -f - >"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; die "applying the bootstrap RBAC failed (log: $log)"; }
}

apply_addons() {
  local log=$CLUSTER_LOGS/addons.log file
  mkdir -p "$CLUSTER_DATA_DIR/storage"
  {
    for file in "$CLUSTER_DIR"/manifests/[1-9]*.yaml; do
      render "$file" | kctl apply -f -
    done
  } >>"$log" 2>&1 || { tail -n 20 "$log" >&2; die "applying the add-ons failed (log: $log)"; }
}

wait_addons() {
  local log=$CLUSTER_LOGS/addons.log
  {
    kctl -n kube-system rollout status deployment/coredns --timeout 180s &&
      kctl -n kube-system rollout status deployment/metrics-server --timeout 180s &&
      kctl -n kube-system rollout status deployment/traefik --timeout 180s &&
      kctl -n local-path-storage rollout status deployment/local-path-provisioner --timeout 180s &&
      kctl wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout 120s
  } >>"$log" 2>&1 || {
    tail -n 10 "$log" >&2
    kctl get pods -A -o wide >&2 || true
    kctl get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -n 15 >&2 || true
    die "the add-ons did not become ready (log: $log)"
  }
}

main() {
  require_root
  mkdir -p "$(dirname "$CLUSTER_LOCK")"
  exec 9>"$CLUSTER_LOCK"
  if ! flock -n 9; then
    info "another 'make cluster' is starting the cluster; waiting for it"
    flock -w 1800 9 || die "timed out waiting for the other start (lock $CLUSTER_LOCK)"
  fi

  local all_running=true name
  for name in "${CLUSTER_COMPONENTS[@]}"; do running "$name" || all_running=false; done
  if [[ $all_running == true ]] && apiserver_ready && node_ready; then
    log "cluster already running (reused, checked in $(elapsed)s)"
    log "kubeconfig: $ADMIN_KUBECONFIG"
    return 0
  fi

  step "prerequisites" check_prerequisites
  step "build (cached)" bash "$CLUSTER_DIR/build.sh"
  mkdir -p "$CONFIG_DIR" "$CLUSTER_RUN_DIR" "$PID_DIR" "$CLUSTER_LOGS"
  chmod 700 "$CLUSTER_STATE_DIR"
  write_kubeadm_config
  step "PKI" make_pki
  write_configs
  # Before touching the host for the first time: what cluster-down must
  # leave behind again.
  if [[ ! -f $CLUSTER_CACHE/host-before.snapshot && ! -e $CLUSTER_RUN_DIR/started ]] &&
    ! ip link show "$CLUSTER_NODE_LINK" >/dev/null 2>&1; then
    bash "$CLUSTER_DIR/hostcheck.sh" snapshot "$CLUSTER_CACHE/host-before.snapshot"
  fi
  touch "$CLUSTER_RUN_DIR/started"
  step "host network" setup_network
  step "etcd" eval 'start_etcd && wait_until etcd 60 etcd_healthy'
  step "kube-apiserver" eval 'start_apiserver && wait_until kube-apiserver 120 apiserver_ready && apply_bootstrap_rbac'
  step "containerd" eval 'start_containerd && wait_until containerd 30 containerd_up && import_images'
  start_controller_manager
  start_scheduler
  start_kubelet
  start_kube_proxy
  start_registry
  step "node Ready" wait_until kubelet 120 node_ready
  local ready_at
  ready_at=$(elapsed)
  start_kube_router
  step "kube-proxy, kube-router, registry" eval 'wait_until kube-proxy 60 kube_proxy_up && wait_until kube-router 60 kube_router_synced && wait_until registry 30 registry_up'
  for name in kube-controller-manager kube-scheduler; do
    running "$name" || fail_with_log "$name" "exited"
  done
  step "add-ons" eval 'apply_addons && wait_addons'
  # Times since the command started, the (usually cached) build included.
  log "cluster ready in $(elapsed)s: node Ready after ${ready_at}s, then the add-ons"
  log "kubeconfig: $ADMIN_KUBECONFIG   (export KUBECONFIG=$ADMIN_KUBECONFIG; kubectl: $CLUSTER_BIN/kubectl)"
  log "registry: $CLUSTER_REGISTRY   ingress: https://127.0.0.1:$CLUSTER_INGRESS_HTTPS_PORT"
}

main
