#!/usr/bin/env bash
# Puts the standalone app in the desktop's menu (for this user; no root): run it from the built
# folder, e.g. dist/compression-studio/install-linux.sh. It links the launcher into ~/.local/bin and
# installs the .desktop entry and the icon; moving the folder later means running it again.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
mkdir -p "$HOME/.local/bin" "$DATA/applications" "$DATA/icons/hicolor/scalable/apps"
ln -sf "$HERE/compression-studio" "$HOME/.local/bin/compression-studio"
install -m 644 "$HERE/compression-studio.svg" "$DATA/icons/hicolor/scalable/apps/compression-studio.svg"
sed "s|^Exec=compression-studio|Exec=\"$HERE/compression-studio\"|" "$HERE/compression-studio.desktop" \
  > "$DATA/applications/compression-studio.desktop"
command -v update-desktop-database > /dev/null && update-desktop-database "$DATA/applications" || true
echo "Compression Studio is in the applications menu; from a shell: compression-studio"
