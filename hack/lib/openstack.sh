# shellcheck shell=bash
# OpenStack (Debian bookworm's Zed: Keystone 22, Neutron 21, Cinder 21) and single-node Ceph on
# loopback, without systemd. Follows ../shared/reference/openstack-on-one-box (its gotchas are
# cited as "recipe §E.n"). Every phase is idempotent: a running service is left alone, a stopped
# one is started from its state on disk, one-time bootstraps run once (markers in $TESTENV_STATE).

# Throw-away credentials of the test environment (loopback only).
OS_ADMIN_PASS=adminpass
OS_DB_PASS=dbpass
OS_RABBIT_PASS=rabbitpass
OS_NEUTRON_PASS=neutronpass
OS_CINDER_PASS=cinderpass
OS_REGION=RegionOne
KEYSTONE_URL=http://127.0.0.1:5000/v3
NEUTRON_URL=http://127.0.0.1:9696
CINDER_URL=http://127.0.0.1:8776
TRANSPORT_URL=rabbit://openstack:$OS_RABBIT_PASS@127.0.0.1:5672/
EXT_NET_NAME=stackube-ext-net
EXT_SUBNET_CIDR=198.51.100.0/24 # TEST-NET-2: never routed anywhere real
# The host's address on br-ex: the external subnet's gateway, so tenant routers reach it, and the
# address kube-apiserver advertises (the `kubernetes` Service's endpoint).
HOST_EXT_ADDR=198.51.100.1
HOST_FILTER_TABLE=stackube-testenv

TESTENV_PACKAGES=(
  keystone python3-openstackclient uwsgi-plugin-python3
  neutron-server neutron-openvswitch-agent neutron-l3-agent neutron-dhcp-agent openvswitch-switch
  cinder-api cinder-scheduler cinder-volume
  ceph-mon ceph-mgr ceph-osd ceph-common python3-rados python3-rbd
  rbd-fuse # stackube-csi's nodes map RBD images with it (no kernel rbd or nbd here)
  rabbitmq-server mariadb-server python3-pymysql
  sudo uuid-runtime curl iproute2 iputils-ping ethtool busybox jq openssl bc nftables
  conntrack # stackube-proxy deletes stale UDP entries with it (and its image carries it)
  containerd runc # the node's container runtime (hack/lib/containerd.sh)
  docker-registry umoci skopeo # the local registry and the image tools (hack/lib/images.sh)
  shellcheck # not a service: the test suite lints hack/ with it
)

# ---------------------------------------------------------------------------------------------
phase_packages() {
  phase "packages (Debian)"
  local missing=() p
  for p in "${TESTENV_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    phase_done "all installed"
    return
  fi
  log "    installing ${#missing[@]} packages: ${missing[*]}"
  # Package scripts must never start services behind our back (there is no systemd; sysv
  # scripts would start a second MariaDB or RabbitMQ): deny them while apt runs.
  local own_policy=""
  if [ ! -x /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  run_logged "$TESTENV_LOGS/apt.log" -- apt-get update -q
  run_logged "$TESTENV_LOGS/apt.log" -- apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
  phase_done
}

# ---------------------------------------------------------------------------------------------
phase_mariadb() {
  phase "mariadb"
  put_file /etc/mysql/mariadb.conf.d/99-stackube-testenv.cnf 644 root:root <<'EOF' || true
[mysqld]
bind-address = 127.0.0.1
default-storage-engine = innodb
innodb_file_per_table = on
innodb_buffer_pool_size = 128M
max_connections = 512
collation-server = utf8_general_ci
character-set-server = utf8
skip-name-resolve
EOF
  install -d -o mysql -g mysql /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    install -d -o mysql -g mysql /var/lib/mysql
    run_logged "$TESTENV_LOGS/mariadb-install-db.log" -- \
      mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db
  fi
  svc_ensure mariadb --watch /etc/mysql/mariadb.conf.d/99-stackube-testenv.cnf \
    -- /usr/sbin/mariadbd --user=mysql || true
  wait_until 60 "mariadb to answer ping" "$TESTENV_LOGS/mariadb.log" -- mariadb-admin ping
  if ! marker mariadb; then
    mariadb -e "CREATE DATABASE IF NOT EXISTS keystone; CREATE DATABASE IF NOT EXISTS neutron;
      CREATE DATABASE IF NOT EXISTS cinder;
      CREATE USER IF NOT EXISTS 'os'@'127.0.0.1' IDENTIFIED BY '$OS_DB_PASS';
      GRANT ALL ON keystone.* TO 'os'@'127.0.0.1'; GRANT ALL ON neutron.* TO 'os'@'127.0.0.1';
      GRANT ALL ON cinder.* TO 'os'@'127.0.0.1';"
    mark mariadb
  fi
  phase_done
}

# ---------------------------------------------------------------------------------------------
rabbitmqctl_() { rabbitmqctl -q -n rabbit@localhost "$@"; }

phase_rabbitmq() {
  phase "rabbitmq"
  put_file /etc/rabbitmq/rabbitmq-env.conf 644 root:root <<'EOF' || true
NODENAME=rabbit@localhost
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=5672
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export ERL_EPMD_ADDRESS=127.0.0.1
EOF
  put_file /etc/rabbitmq/rabbitmq.conf 644 root:root <<'EOF' || true
listeners.tcp.default = 127.0.0.1:5672
loopback_users = none
EOF
  install -d -o rabbitmq -g rabbitmq /var/log/rabbitmq /var/lib/rabbitmq
  # epmd first, bound to loopback: rabbitmq-server would otherwise start one on 0.0.0.0:4369.
  svc_ensure epmd --user rabbitmq --env HOME=/var/lib/rabbitmq -- epmd -address 127.0.0.1 || true
  if svc_ensure rabbitmq --env HOME=/var/lib/rabbitmq --env ERL_EPMD_ADDRESS=127.0.0.1 \
    --watch /etc/rabbitmq/rabbitmq-env.conf --watch /etc/rabbitmq/rabbitmq.conf \
    -- /usr/sbin/rabbitmq-server; then
    wait_until 90 "rabbitmq to start" "$TESTENV_LOGS/rabbitmq.log" -- rabbitmqctl_ status
    rabbitmqctl_ await_startup --timeout 60 >/dev/null
  fi
  if ! marker rabbitmq; then
    rabbitmqctl_ add_user openstack "$OS_RABBIT_PASS" >/dev/null 2>&1 || true
    rabbitmqctl_ set_permissions openstack '.*' '.*' '.*' >/dev/null
    mark rabbitmq
  fi
  phase_done
}

# ---------------------------------------------------------------------------------------------
phase_keystone() {
  phase "keystone"
  put_file /etc/keystone/keystone.conf 640 root:keystone <<EOF || true
[DEFAULT]
log_dir = /var/log/keystone
[database]
connection = mysql+pymysql://os:$OS_DB_PASS@127.0.0.1/keystone
[token]
provider = fernet
[fernet_tokens]
key_repository = /etc/keystone/fernet-keys/
[credential]
key_repository = /etc/keystone/credential-keys/
[oslo_policy]
policy_dirs = /etc/keystone/policy.d
EOF
  install -d -o keystone -g keystone /var/log/keystone /var/lib/keystone
  local l=$TESTENV_LOGS/keystone-manage.log
  if ! marker keystone-bootstrap; then
    run_logged "$l" /var/log/keystone/keystone-manage.log -- su -s /bin/sh keystone -c "keystone-manage db_sync"
    run_logged "$l" /var/log/keystone/keystone-manage.log -- keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
    run_logged "$l" /var/log/keystone/keystone-manage.log -- keystone-manage credential_setup --keystone-user keystone --keystone-group keystone
    run_logged "$l" /var/log/keystone/keystone-manage.log -- keystone-manage bootstrap --bootstrap-password "$OS_ADMIN_PASS" \
      --bootstrap-region-id "$OS_REGION" \
      --bootstrap-admin-url "$KEYSTONE_URL/" --bootstrap-internal-url "$KEYSTONE_URL/" \
      --bootstrap-public-url "$KEYSTONE_URL/"
    chown -R keystone:keystone /var/log/keystone
    mark keystone-bootstrap
  fi
  svc_ensure keystone --watch /etc/keystone/keystone.conf -- /usr/bin/uwsgi --plugin python3 --http-socket 127.0.0.1:5000 \
      --wsgi-file /usr/bin/keystone-wsgi-public --master --processes 2 --threads 1 --lazy-apps \
      --die-on-term --buffer-size 65535 --add-header "Connection: close" \
      --uid keystone --gid keystone --chdir /var/lib/keystone || true
  wait_until 60 "keystone to answer GET /v3" "$TESTENV_LOGS/keystone.log" /var/log/keystone/keystone.log \
    -- curl -sf "$KEYSTONE_URL"
  if ! marker keystone-catalog; then
    # One python process: the openstack CLI costs ~2.5 s per call here (recipe §E.10).
    run_logged "$l" /var/log/keystone/keystone-manage.log -- "$DEBIAN_PY" - <<EOF
from keystoneauth1.identity import v3
from keystoneauth1 import session
from keystoneclient.v3 import client
s = session.Session(auth=v3.Password(auth_url='$KEYSTONE_URL', username='admin',
    password='$OS_ADMIN_PASS', project_name='admin', user_domain_id='default',
    project_domain_id='default'))
ks = client.Client(session=s)
def one(mgr, **kw):
    l = mgr.list(**kw)
    return l[0] if l else None
svc = one(ks.projects, name='service') or ks.projects.create('service', 'default')
adminp = one(ks.projects, name='admin')
admin = one(ks.roles, name='admin')
service_role = one(ks.roles, name='service') or ks.roles.create('service')
for name, pw in (('neutron', '$OS_NEUTRON_PASS'), ('cinder', '$OS_CINDER_PASS')):
    u = one(ks.users, name=name) or ks.users.create(name, domain='default', password=pw)
    ks.roles.grant(admin, user=u, project=svc)
    ks.roles.grant(service_role, user=u, project=svc)
# The cloud admin also holds 'service' so its token can be sent as X-Service-Token, which Cinder
# requires to delete an attachment when there is no Nova to ask (recipe §E.8).
ks.roles.grant(service_role, user=one(ks.users, name='admin'), project=adminp)
for name, typ, url in (('neutron', 'network', '$NEUTRON_URL'),
                       ('cinderv3', 'volumev3', '$CINDER_URL/v3/%(project_id)s'),
                       ('cinder', 'block-storage', '$CINDER_URL/v3/%(project_id)s')):
    sv = one(ks.services, type=typ) or ks.services.create(name, type=typ)
    for iface in ('public', 'internal', 'admin'):
        if not ks.endpoints.list(service=sv, interface=iface):
            ks.endpoints.create(sv, url, interface=iface, region='$OS_REGION')
EOF
    mark keystone-catalog
  fi
  phase_done
}

# os_token: an admin token scoped to project admin (printed).
os_token() {
  curl -sf -D - -o /dev/null -X POST "$KEYSTONE_URL/auth/tokens" -H 'Content-Type: application/json' \
    -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"'"$OS_ADMIN_PASS"'"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}' |
    awk -F': ' 'tolower($1)=="x-subject-token"{print $2}' | tr -d '\r'
}

# os_api METHOD URL [BODY]: an admin API call, JSON on stdout; fails on HTTP errors.
os_api() {
  local method=$1 url=$2 body=${3:-}
  [ -n "${_OS_TOKEN:-}" ] || _OS_TOKEN=$(os_token)
  [ -n "$_OS_TOKEN" ] || return 1
  if [ -n "$body" ]; then
    curl -sf -X "$method" "$url" -H "X-Auth-Token: $_OS_TOKEN" -H 'Content-Type: application/json' -d "$body"
  else
    curl -sf -X "$method" "$url" -H "X-Auth-Token: $_OS_TOKEN"
  fi
}

# ---------------------------------------------------------------------------------------------
phase_openvswitch() {
  phase "openvswitch (userspace datapath)"
  install -d /var/run/openvswitch /var/log/openvswitch /var/lib/openvswitch
  [ -s /var/lib/openvswitch/conf.db ] ||
    ovsdb-tool create /var/lib/openvswitch/conf.db /usr/share/openvswitch/vswitch.ovsschema
  svc_ensure ovsdb-server -- ovsdb-server /var/lib/openvswitch/conf.db \
    --remote=punix:/var/run/openvswitch/db.sock \
    --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
    --pidfile=/var/run/openvswitch/ovsdb-server.pid --log-file=/var/log/openvswitch/ovsdb-server.log || true
  wait_until 30 "ovsdb-server socket" "$TESTENV_LOGS/ovsdb-server.log" -- \
    ovs-vsctl --no-wait --timeout=2 show
  ovs-vsctl --no-wait init
  local host
  host=$(hostname)
  [ "$(ovs-vsctl --no-wait get Open_vSwitch . external_ids:system-id 2>/dev/null)" = "\"$host\"" ] ||
    ovs-vsctl --no-wait set Open_vSwitch . "external_ids:hostname=$host" "external_ids:system-id=$host"
  # No kernel module here: it logs "kernel module probably not loaded" and runs the netdev
  # (userspace) datapath.
  local vswitchd_started=""
  svc_ensure ovs-vswitchd -- ovs-vswitchd unix:/var/run/openvswitch/db.sock \
    --pidfile=/var/run/openvswitch/ovs-vswitchd.pid --log-file=/var/log/openvswitch/ovs-vswitchd.log &&
    vswitchd_started=1
  wait_until 30 "ovs-vswitchd" "$TESTENV_LOGS/ovs-vswitchd.log" -- ovs-appctl -t ovs-vswitchd version
  [ -z "$vswitchd_started" ] || agents_plumbing_reset
  # br-ex must exist before the OVS agent starts (bridge_mappings).
  ovs-vsctl --timeout=30 --may-exist add-br br-int -- set bridge br-int datapath_type=netdev
  ovs-vsctl --timeout=30 --may-exist add-br br-ex -- set bridge br-ex datapath_type=netdev
  host_ext_address
  host_filter
  phase_done "host $HOST_EXT_ADDR on br-ex, filtered"
}

# agents_plumbing_reset: after ovs-vswitchd (re)started, the routers' and DHCP servers' ports are
# dead. With the userspace datapath an internal port is a tap that ovs-vswitchd opens by name in
# its own namespace; the agents moved theirs into qrouter-/qdhcp- namespaces, where a new
# ovs-vswitchd cannot find them (link_state down: every tenant router silently stops forwarding).
# The agents re-plug only ports whose device is missing, so: stop them, remove their namespaces'
# devices, ports and the namespaces, and let phase_neutron start them again to rebuild all of it
# from Neutron (their first full sync). Pods' veths are system ports in the host's namespace and
# survive a restart as they are.
agents_plumbing_reset() {
  local namespaces ns dev
  namespaces=$(ip netns list | awk '$1 ~ /^(qrouter|qdhcp)-/ {print $1}')
  [ -n "$namespaces" ] || return 0
  svc_stop neutron-l3-agent 12
  svc_stop neutron-dhcp-agent 12
  for ns in $namespaces; do
    for dev in $(ip netns exec "$ns" ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}'); do
      [ "$dev" = lo ] && continue
      ovs-vsctl --timeout=30 --if-exists del-port "$dev"
      ip netns exec "$ns" ip link del "$dev" 2>/dev/null || true
    done
    ip netns del "$ns"
  done
}

# The host on the external network: br-ex's own interface gets the subnet's gateway address (kept
# by the kernel only while ovs-vswitchd keeps the interface: `up` puts it back after a restart).
# TX checksum offload off, as on pods' veths: the userspace datapath drops TCP segments with
# partial checksums.
host_ext_address() {
  ip link set br-ex up
  ip -4 addr show dev br-ex | grep -q "inet $HOST_EXT_ADDR/" ||
    ip addr replace "$HOST_EXT_ADDR/${EXT_SUBNET_CIDR#*/}" dev br-ex
  ethtool -K br-ex tx off >/dev/null 2>&1 || true
}

# What tenant networks may reach of the host. Their traffic arrives on br-ex (routed and SNATed by
# their routers, or from floating IPs): it may open connections to kube-apiserver's port and to
# nothing else (the kubelet, the OpenStack services, anything bound to all addresses get a TCP
# reset or ICMP unreachable), and the host forwards none of it anywhere. Replies to connections
# the host opened pass. The other way, the host reaches only the cluster network's pods, once
# hack/devbox routes its range through the cluster router on br-ex (kube-apiserver's pods/proxy,
# the kubelet's probes); what it sends to pod and Service ranges any other way is refused here
# rather than sent out of the machine by the default route. One table of our own, replaced
# atomically.
HOST_UNROUTED=(10.244.0.0/16 10.246.0.0/16 10.96.0.0/12)
host_filter() {
  nft -f - <<EOF
table inet $HOST_FILTER_TABLE
delete table inet $HOST_FILTER_TABLE
table inet $HOST_FILTER_TABLE {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname != "br-ex" accept
    ct state established,related accept
    tcp dport 6443 accept comment "kube-apiserver: the kubernetes Service"
    meta l4proto tcp reject with tcp reset
    reject with icmpx admin-prohibited
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "br-ex" drop
  }
  chain output {
    type filter hook output priority filter; policy accept;
    ip daddr { $(IFS=,; echo "${HOST_UNROUTED[*]}") } oifname != "br-ex" reject with icmpx admin-prohibited comment "pods' networks: not from the host but through a router"
  }
}
EOF
}

# ---------------------------------------------------------------------------------------------
NEUTRON_CONF=(--config-file /etc/neutron/neutron.conf)

write_neutron_config() {
  put_file /etc/neutron/neutron.conf 640 root:neutron <<EOF || true
[DEFAULT]
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
bind_host = 127.0.0.1
bind_port = 9696
transport_url = $TRANSPORT_URL
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 1
graceful_shutdown_timeout = 5
log_dir = /var/log/neutron
state_path = /var/lib/neutron
[database]
connection = mysql+pymysql://os:$OS_DB_PASS@127.0.0.1/neutron
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:5000
auth_url = http://127.0.0.1:5000
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = neutron
password = $OS_NEUTRON_PASS
region_name = $OS_REGION
[oslo_concurrency]
lock_path = /var/lib/neutron/lock
[oslo_policy]
policy_dirs = /etc/neutron/policy.d
[agent]
root_helper = sudo neutron-rootwrap /etc/neutron/rootwrap.conf
root_helper_daemon = sudo neutron-rootwrap-daemon /etc/neutron/rootwrap.conf
EOF
  put_file /etc/neutron/plugins/ml2/ml2_conf.ini 640 root:neutron <<'EOF' || true
[ml2]
type_drivers = flat,vlan,vxlan
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_flat]
flat_networks = physnet1
[ml2_type_vlan]
network_vlan_ranges = physnet1:100:199
[ml2_type_vxlan]
vni_ranges = 1:1000
EOF
  # tunnel_types = vxlan is needed even on one node, or vxlan ports end up binding_failed.
  put_file /etc/neutron/plugins/ml2/openvswitch_agent.ini 640 root:neutron <<'EOF' || true
[ovs]
datapath_type = netdev
integration_bridge = br-int
tunnel_bridge = br-tun
bridge_mappings = physnet1:br-ex
local_ip = 127.0.0.1
of_listen_address = 127.0.0.1
ovsdb_connection = tcp:127.0.0.1:6640
[agent]
tunnel_types = vxlan
l2_population = false
[securitygroup]
firewall_driver = openvswitch
enable_security_group = true
EOF
  put_file /etc/neutron/l3_agent.ini 640 root:neutron <<'EOF' || true
[DEFAULT]
interface_driver = openvswitch
[ovs]
integration_bridge = br-int
EOF
  put_file /etc/neutron/dhcp_agent.ini 640 root:neutron <<'EOF' || true
[DEFAULT]
interface_driver = openvswitch
dhcp_driver = neutron.agent.linux.dhcp.Dnsmasq
enable_isolated_metadata = false
[ovs]
integration_bridge = br-int
EOF
}

# neutron_agent_ensure openvswitch|l3|dhcp: starts the agent unless it runs as configured (true
# when it was started).
neutron_agent_ensure() {
  local agent=$1 ini
  case $agent in
  openvswitch) ini=/etc/neutron/plugins/ml2/openvswitch_agent.ini ;;
  *) ini=/etc/neutron/${agent}_agent.ini ;;
  esac
  svc_ensure "neutron-$agent-agent" --watch /etc/neutron/neutron.conf --watch "$ini" \
    -- "/usr/bin/neutron-$agent-agent" "${NEUTRON_CONF[@]}" \
    --config-file "$ini" --log-file "/var/log/neutron/neutron-$agent-agent.log"
}

neutron_agents_alive() {
  local n
  n=$(os_api GET "$NEUTRON_URL/v2.0/agents" | jq '[.agents[] | select(.alive)] | length') || return 1
  [ "${n:-0}" -ge 3 ]
}

phase_neutron() {
  phase "neutron server and agents"
  write_neutron_config
  install -d -o neutron -g neutron /var/lib/neutron /var/lib/neutron/lock /var/log/neutron
  if ! marker neutron-db; then
    run_logged "$TESTENV_LOGS/neutron-db-manage.log" -- su -s /bin/sh neutron -c \
      "neutron-db-manage --config-file /etc/neutron/neutron.conf --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade heads"
    mark neutron-db
  fi
  svc_ensure neutron-server --user neutron --watch /etc/neutron/neutron.conf \
    --watch /etc/neutron/plugins/ml2/ml2_conf.ini \
    -- /usr/bin/neutron-server "${NEUTRON_CONF[@]}" --config-file /etc/neutron/plugins/ml2/ml2_conf.ini \
    --log-file /var/log/neutron/neutron-server.log || true
  wait_until 120 "neutron-server to answer HTTP" /var/log/neutron/neutron-server.log "$TESTENV_LOGS/neutron-server.log" \
    -- curl -sf "$NEUTRON_URL/"
  local started="" agent ini
  local ovs_log=/var/log/neutron/neutron-openvswitch-agent.log
  # Where this start's lines begin in the OVS agent's log (earlier runs' lines must not count).
  OVS_LOG_MARK=1
  [ -f "$ovs_log" ] && OVS_LOG_MARK=$(($(wc -l <"$ovs_log") + 1))
  for agent in openvswitch l3 dhcp; do
    neutron_agent_ensure "$agent" && started=1
  done
  wait_until 120 "3 neutron agents alive" "$ovs_log" \
    /var/log/neutron/neutron-l3-agent.log /var/log/neutron/neutron-dhcp-agent.log -- neutron_agents_alive
  if [ -n "$started" ]; then
    # The OVS agent reports alive before its first full sync; ports bound before that stay
    # binding_failed (recipe §E.4). Wait for its first completed rpc_loop instead of guessing.
    wait_until 60 "the OVS agent's first sync" "$ovs_log" -- ovs_agent_synced
  fi
  phase_done
}

# ovs_agent_synced: the OVS agent has completed an rpc_loop iteration since OVS_LOG_MARK.
ovs_agent_synced() {
  tail -n +"$OVS_LOG_MARK" /var/log/neutron/neutron-openvswitch-agent.log |
    grep -q 'Agent rpc_loop - iteration:[0-9]* completed'
}

phase_external_network() {
  phase "external network"
  local id
  id=$(os_api GET "$NEUTRON_URL/v2.0/networks?name=$EXT_NET_NAME&router:external=true" | jq -r '.networks[0].id // empty')
  if [ -z "$id" ]; then
    id=$(os_api POST "$NEUTRON_URL/v2.0/networks" '{"network":{"name":"'$EXT_NET_NAME'","router:external":true,"provider:network_type":"flat","provider:physical_network":"physnet1","shared":false}}' |
      jq -r '.network.id') || die "could not create the external network"
  fi
  if [ "$(os_api GET "$NEUTRON_URL/v2.0/subnets?network_id=$id" | jq '.subnets | length')" = 0 ]; then
    os_api POST "$NEUTRON_URL/v2.0/subnets" '{"subnet":{"name":"'$EXT_NET_NAME'-subnet","network_id":"'"$id"'","ip_version":4,"cidr":"'$EXT_SUBNET_CIDR'","gateway_ip":"198.51.100.1","enable_dhcp":false,"allocation_pools":[{"start":"198.51.100.10","end":"198.51.100.250"}]}}' >/dev/null ||
      die "could not create the external subnet"
  fi
  EXT_NET_ID=$id
  phase_done
}

# The L3 agent can wedge for good right after it starts while it still reports alive: two routers
# starting the same privsep helper at once end in eventlet's "greenlet.error: cannot switch to a
# different thread", and no router update finishes after that; every pod behind a router it never
# wired finds no gateway. So a probe router with a gateway on the external network must get its
# qg- device, or the agent is started again. The probe runs beside the phases that follow (at a
# start the agent first syncs the routers it already has, ~25 s); l3_probe_wait joins it.
L3_PROBE_NAME=stackube-testenv-l3-probe
L3_PROBE_SECS=${STACKUBE_TESTENV_L3_PROBE_SECS:-120}

l3_router_wired() { ip netns exec "qrouter-$1" ip -o link show 2>/dev/null | grep -q ' qg-'; }

l3_probe_routers_delete() {
  local id
  for id in $(os_api GET "$NEUTRON_URL/v2.0/routers?name=$L3_PROBE_NAME" | jq -r '.routers[].id'); do
    os_api DELETE "$NEUTRON_URL/v2.0/routers/$id" >/dev/null || true
  done
}

l3_agent_probe() {
  local attempt id deadline
  for attempt in 1 2 3; do
    l3_probe_routers_delete
    id=$(os_api POST "$NEUTRON_URL/v2.0/routers" \
      '{"router":{"name":"'$L3_PROBE_NAME'","external_gateway_info":{"network_id":"'"$EXT_NET_ID"'"}}}' |
      jq -r '.router.id') || die "could not create the L3 agent's probe router"
    deadline=$((SECONDS + L3_PROBE_SECS))
    while [ $SECONDS -lt $deadline ] && ! l3_router_wired "$id"; do sleep 0.5; done
    if l3_router_wired "$id"; then
      l3_probe_routers_delete
      return 0
    fi
    log "    the L3 agent wired no probe router up in ${L3_PROBE_SECS}s (start $attempt): starting it again"
    svc_stop neutron-l3-agent 12
    neutron_agent_ensure l3 || true
    wait_until 120 "3 neutron agents alive" /var/log/neutron/neutron-l3-agent.log -- neutron_agents_alive
  done
  l3_probe_routers_delete
  die "the L3 agent wired no router up in 3 starts (see /var/log/neutron/neutron-l3-agent.log)"
}

l3_probe_start() {
  L3_PROBE_LOG=$TESTENV_LOGS/l3-probe.log
  l3_agent_probe >"$L3_PROBE_LOG" 2>&1 &
  L3_PROBE_PID=$!
}

l3_probe_wait() {
  phase "the L3 agent wires a probe router up"
  if ! wait "$L3_PROBE_PID"; then
    cat "$L3_PROBE_LOG" >&2
    die "the L3 agent does not work"
  fi
  phase_done "$(grep -c 'starting it again' "$L3_PROBE_LOG") restart(s)"
}

# ---------------------------------------------------------------------------------------------
CEPH_BOOTSTRAP=/var/lib/ceph/stackube-bootstrap # monmap, mon keyring, osd id

ceph_() { timeout 20 ceph "$@"; }

pgs_clean() {
  local j
  j=$(ceph_ pg stat -f json 2>/dev/null) || return 1
  echo "$j" | jq -e '(.pg_summary.num_pgs // .num_pgs) as $n | $n > 0 and
    ([(.pg_summary.num_pg_by_state // .num_pg_by_state)[] | select(.name == "active+clean") | .num] | add // 0) == $n' >/dev/null
}

phase_ceph() {
  phase "ceph (mon, mgr, file-backed osd)"
  local host
  host=$(hostname -s)
  install -d -o ceph -g ceph /var/lib/ceph/mon/ceph-a /var/lib/ceph/mgr/ceph-x /var/log/ceph /var/run/ceph
  if ! marker ceph-bootstrap; then
    local fsid
    fsid=$(uuidgen)
    put_file /etc/ceph/ceph.conf 644 root:root <<EOF || true
[global]
fsid = $fsid
mon_initial_members = a
mon_host = v2:127.0.0.1:3300/0
public_network = 127.0.0.0/8
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 5
mon_max_pg_per_osd = 500
ms_bind_msgr1 = false
ms_bind_ipv6 = false
pid_file = /var/run/ceph/\$cluster-\$name.pid
[osd]
osd_objectstore = bluestore
bluestore_block_size = 10737418240
bluestore_block_create = true
bluestore_fsck_on_mkfs = false
osd_memory_target = 939524096
EOF
    # Bootstrap keys live with Ceph's own state, readable by the ceph user only.
    local k=$CEPH_BOOTSTRAP
    install -d -m 700 -o ceph -g ceph "$k"
    rm -rf /var/lib/ceph/mon/ceph-a/* /var/lib/ceph/mgr/ceph-x/*
    ceph-authtool --create-keyring "$k/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool --create-keyring /etc/ceph/ceph.client.admin.keyring --gen-key -n client.admin \
      --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
    ceph-authtool "$k/mon.keyring" --import-keyring /etc/ceph/ceph.client.admin.keyring >/dev/null
    monmaptool --create --addv a '[v2:127.0.0.1:3300]' --fsid "$fsid" "$k/monmap" >/dev/null
    chown -R ceph:ceph "$k"
    run_logged "$TESTENV_LOGS/ceph-bootstrap.log" -- setpriv --reuid=ceph --regid=ceph --init-groups -- \
      ceph-mon --mkfs -i a --monmap "$k/monmap" --keyring "$k/mon.keyring"
  fi
  svc_ensure ceph-mon --watch /etc/ceph/ceph.conf -- ceph-mon -f -i a --setuser ceph --setgroup ceph || true
  wait_until 60 "ceph-mon quorum" "$TESTENV_LOGS/ceph-mon.log" /var/log/ceph/ceph-mon.a.log -- ceph_ -s
  if ! marker ceph-bootstrap; then
    ceph_ auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
      -o /var/lib/ceph/mgr/ceph-x/keyring
    chown ceph:ceph /var/lib/ceph/mgr/ceph-x/keyring
  fi
  svc_ensure ceph-mgr --watch /etc/ceph/ceph.conf -- ceph-mgr -f -i x --setuser ceph --setgroup ceph || true
  if ! marker ceph-bootstrap; then
    local uuid id
    uuid=$(uuidgen)
    id=$(ceph_ osd new "$uuid")
    echo "$id" >"$CEPH_BOOTSTRAP/osd-id"
    install -d -o ceph -g ceph "/var/lib/ceph/osd/ceph-$id"
    ceph_ auth get-or-create "osd.$id" osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' \
      -o "/var/lib/ceph/osd/ceph-$id/keyring"
    chown ceph:ceph "/var/lib/ceph/osd/ceph-$id/keyring"
    # bluestore on a sparse 10 GiB file in the OSD directory: no LVM, no kernel rbd here.
    run_logged "$TESTENV_LOGS/ceph-bootstrap.log" -- setpriv --reuid=ceph --regid=ceph --init-groups -- \
      ceph-osd -i "$id" --mkfs --osd-uuid "$uuid"
    local cl=$TESTENV_LOGS/ceph-bootstrap.log
    run_logged "$cl" -- ceph_ osd crush add-bucket "$host" host
    run_logged "$cl" -- ceph_ osd crush move "$host" root=default
    run_logged "$cl" -- ceph_ osd crush add "osd.$id" 1.0 host="$host"
  fi
  local osd
  osd=$(cat "$CEPH_BOOTSTRAP/osd-id")
  svc_ensure ceph-osd --watch /etc/ceph/ceph.conf -- ceph-osd -f -i "$osd" --setuser ceph --setgroup ceph || true
  if ! marker ceph-bootstrap; then
    ceph_ osd pool create volumes 8 8 >/dev/null 2>&1
    run_logged "$TESTENV_LOGS/ceph-bootstrap.log" -- timeout 60 rbd pool init volumes
    ceph_ auth get-or-create client.cinder mon 'profile rbd' osd 'profile rbd pool=volumes' \
      mgr 'profile rbd pool=volumes' -o /etc/ceph/ceph.client.cinder.keyring
    chown cinder:cinder /etc/ceph/ceph.client.cinder.keyring
    mark ceph-bootstrap
  fi
  wait_until 120 "ceph placement groups active+clean" "$TESTENV_LOGS/ceph-osd.log" \
    "/var/log/ceph/ceph-osd.$osd.log" -- pgs_clean
  phase_done
}

# ---------------------------------------------------------------------------------------------
cinder_services_up() {
  local n
  n=$(os_api GET "$CINDER_URL/v3/os-services" |
    jq '[.services[] | select(.state == "up" and .status == "enabled" and (.binary == "cinder-scheduler" or .binary == "cinder-volume"))] | length') || return 1
  [ "${n:-0}" -ge 2 ]
}

phase_cinder() {
  phase "cinder (RBD backend)"
  put_file /etc/cinder/cinder.conf 640 root:cinder <<EOF || true
[DEFAULT]
auth_strategy = keystone
transport_url = $TRANSPORT_URL
my_ip = 127.0.0.1
host = stackube-testenv
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = 8776
osapi_volume_workers = 1
enabled_backends = ceph
state_path = /var/lib/cinder
log_dir = /var/log/cinder
graceful_shutdown_timeout = 5
[database]
connection = mysql+pymysql://os:$OS_DB_PASS@127.0.0.1/cinder
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:5000
auth_url = http://127.0.0.1:5000
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = cinder
password = $OS_CINDER_PASS
region_name = $OS_REGION
[oslo_concurrency]
lock_path = /var/lib/cinder/lock
[oslo_policy]
policy_dirs = /etc/cinder/policy.d
[ceph]
volume_driver = cinder.volume.drivers.rbd.RBDDriver
volume_backend_name = ceph
rbd_pool = volumes
rbd_ceph_conf = /etc/ceph/ceph.conf
rbd_user = cinder
rbd_flatten_volume_from_snapshot = false
rbd_max_clone_depth = 5
rbd_store_chunk_size = 4
rados_connect_timeout = 5
EOF
  install -d -o cinder -g cinder /var/lib/cinder /var/lib/cinder/lock /var/log/cinder
  if ! marker cinder-db; then
    run_logged "$TESTENV_LOGS/cinder-manage.log" /var/log/cinder/cinder-manage.log -- su -s /bin/sh cinder -c "cinder-manage db sync"
    mark cinder-db
  fi
  local s
  for s in api scheduler volume; do
    svc_ensure "cinder-$s" --user cinder --watch /etc/cinder/cinder.conf -- "/usr/bin/cinder-$s" \
      --config-file /etc/cinder/cinder.conf --log-file "/var/log/cinder/cinder-$s.log" || true
  done
  wait_until 120 "cinder-api to answer HTTP" /var/log/cinder/cinder-api.log -- curl -sf "$CINDER_URL/"
  wait_until 120 "cinder-scheduler and cinder-volume up" /var/log/cinder/cinder-volume.log \
    /var/log/cinder/cinder-scheduler.log -- cinder_services_up
  phase_done
}

# Stop order matters: API users first, then what they depend on.
OPENSTACK_SERVICES=(cinder-volume cinder-scheduler cinder-api
  neutron-dhcp-agent neutron-l3-agent neutron-openvswitch-agent neutron-server
  ceph-osd ceph-mgr ceph-mon keystone rabbitmq epmd mariadb ovs-vswitchd ovsdb-server)
