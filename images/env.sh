# Source this file: it points podman and buildah at project-local configuration.
#
# These machines have no Docker engine; podman/buildah (Debian packages) build and run the
# images from their unchanged Dockerfiles. The host needs three settings the defaults do not
# give: the runc runtime (crun refuses this host's hybrid cgroup layout), the cgroupfs
# manager, and explicit ulimits (the default open-files limit needs CAP_SYS_RESOURCE, which
# is not granted here). They are written under build/containers/ and passed through
# CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, so nothing in /etc is edited.

_images_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_conf_dir="$_images_root/build/containers"
mkdir -p "$_conf_dir"
_nofile="$(ulimit -Hn)"
[ "$_nofile" = unlimited ] && _nofile=1048576
cat > "$_conf_dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=${_nofile}:${_nofile}", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat > "$_conf_dir/storage.conf" <<CONF
[storage]
driver = "overlay"
runroot = "${MLOPS_CONTAINERS_RUNROOT:-/run/mlops-containers}"
graphroot = "${MLOPS_CONTAINERS_GRAPHROOT:-/var/lib/mlops-containers}"
CONF
export CONTAINERS_CONF="$_conf_dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$_conf_dir/storage.conf"
# Images built here are test images: they carry this machine's CA and never leave it.
export MLOPS_IMAGE_PREFIX="${MLOPS_IMAGE_PREFIX:-localhost/mlops-test}"
export MLOPS_BASE_STANDIN="${MLOPS_BASE_STANDIN:-localhost/mlops-test/python-standin:3.11-slim-bookworm}"
unset _images_root _conf_dir _nofile
