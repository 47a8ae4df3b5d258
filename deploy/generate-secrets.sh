#!/bin/sh
# Generate the secrets deploy/ turns into Kubernetes Secrets (kustomization.yaml's
# secretGenerator), each only when it is not there yet:
#   secrets/redis-password  Redis's requirepass, also given to the webhook (--cache URL)
#   secrets/cache-keys      the keys sealing the webhook's Redis entries (--cache-key-file):
#                           one per line, the first seals, every line is accepted
# Rotating the cache key: docs/admission.md ("The shared cache"). The files never leave
# this directory in git (secrets/.gitignore).
set -eu
umask 077
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
new_secret() { openssl rand -hex 32; }
if [ ! -s "$dir/redis-password" ]; then
  new_secret | tr -d '\n' > "$dir/redis-password"
  echo "wrote $dir/redis-password"
fi
if [ ! -s "$dir/cache-keys" ]; then
  new_secret > "$dir/cache-keys"
  echo "wrote $dir/cache-keys"
fi
