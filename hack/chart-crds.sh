#!/usr/bin/env bash
# Copies the generated CRDs into the chart, switched by crds.install and
# kept on uninstall by crds.keep. Run by `make manifests`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=charts/targetlock/templates/crds
mkdir -p "$out"
for f in config/crd/bases/*.yaml; do
  {
    echo "{{- if include \"targetlock.installCRDs\" . }}"
    sed -e '/^  annotations:$/a\    {{- if .Values.crds.keep }}\n    helm.sh/resource-policy: keep\n    {{- end }}' "$f"
    echo "{{- end }}"
  } > "$out/$(basename "$f")"
done
