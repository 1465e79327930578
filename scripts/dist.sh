#!/usr/bin/env bash
# `make dist`: everything a team ships Spool with, signed with its keys, in
# one folder (target/dist/ under the cargo target folder):
#   spool-desktop_<v>_amd64.deb, spool-desktop-<v>-1.x86_64.rpm  the app, with
#       the `spool` CLI at /usr/bin/spool (and the spool-full it execs at
#       /usr/lib/spool/); the rpm GPG-signed (rpm -K)
#   *.deb.sig, *.rpm.sig  updater signatures (minisign, base64 as Tauri
#       writes them; the trusted comment carries version:<v>)
#   latest.json           the updater manifest (Tauri v2 static format)
#   updater.pub           the updater public key built into the app
#   SHA256SUMS, SHA256SUMS.asc  checksums of every artifact, GPG-signed
#   apt/                  a signed APT repository (suite stable, component
#       main), with its key as apt/spool-archive-keyring.gpg and .asc
#
# Environment (all optional):
#   DIST_PROFILE    release (default) or debug: `tauri build --debug`, which
#                   reuses the debug build `make test` made (for the tests)
#   SPOOL_DIST_DIR  the output folder instead of <target>/dist; emptied first
#                   when it holds an earlier dist, refused when it holds
#                   anything else
#   TAURI_SIGNING_PRIVATE_KEY (+ _PASSWORD)  updater secret key (content or
#                   a path), SPOOL_UPDATER_PUBKEY its public key (content or a
#                   path; built into the app), SPOOL_GPG_KEY an ASCII-armoured
#                   GPG secret key (content or a path; + SPOOL_GPG_PASSPHRASE)
#                   for the rpm, the APT repository and SHA256SUMS.asc. All
#                   three or none: with none, development keys are made once
#                   in .spool/keys/ and reused.
#   SPOOL_UPDATE_ENDPOINT  the update manifest URL built into the app
#   SPOOL_DIST_BASE_URL    where the artifacts will be served, for
#                   latest.json's urls (default: SPOOL_UPDATE_ENDPOINT's folder)
#   SPOOL_RELEASE_NOTES    latest.json's notes
# Secrets go through the environment and 0600 files in a private temporary
# folder, never the command line or the output; GPG runs in a temporary
# GNUPGHOME, never the user's.
set -euo pipefail

cd "$(dirname "$0")/.."
TAURI=ui/node_modules/.bin/tauri
KEYS=.spool/keys

die() { echo "dist: $*" >&2; exit 1; }
say() { echo "dist: $*"; }
# A value given either inline or as the path of a file holding it.
value_or_file() { if [ -f "$1" ]; then cat -- "$1"; else printf '%s' "$1"; fi; }

for tool in gpg gpgconf minisign rpmsign apt-ftparchive dpkg-deb python3 "$TAURI"; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/setup.sh"
done

profile=${DIST_PROFILE:-release}
case "$profile" in
  release) cargo_profile=(--release); tauri_profile=() ;;
  debug) cargo_profile=(); tauri_profile=(--debug) ;;
  *) die "DIST_PROFILE must be release or debug, not '$profile'" ;;
esac
target=$(CARGO=${CARGO:-cargo} scripts/target-dir.sh)
out=${SPOOL_DIST_DIR:-$target/dist}
out=$(realpath -m -- "$out")
if [ -e "$out" ]; then
  if [ -f "$out/.spool-dist" ]; then rm -rf -- "$out"
  elif [ -n "$(ls -A -- "$out")" ]; then die "$out holds files that are not an earlier dist: not touching it"
  fi
fi

work=$(mktemp -d)
chmod 700 "$work"
cleanup() {
  [ -d "$work/gnupg" ] && GNUPGHOME="$work/gnupg" gpgconf --kill gpg-agent 2>/dev/null
  [ -d "$work/gen-gnupg" ] && GNUPGHOME="$work/gen-gnupg" gpgconf --kill gpg-agent 2>/dev/null
  rm -rf -- "$work"
}
trap cleanup EXIT

# --- Keys: all from the environment, or all the development ones ----------
given=() missing=()
for v in TAURI_SIGNING_PRIVATE_KEY SPOOL_UPDATER_PUBKEY SPOOL_GPG_KEY; do
  if [ -n "${!v:-}" ]; then given+=("$v"); else missing+=("$v"); fi
done
if [ ${#given[@]} -eq 3 ]; then
  dev_keys=false
  TAURI_SIGNING_PRIVATE_KEY=$(value_or_file "$TAURI_SIGNING_PRIVATE_KEY")
  SPOOL_UPDATER_PUBKEY=$(value_or_file "$SPOOL_UPDATER_PUBKEY")
  SPOOL_GPG_KEY=$(value_or_file "$SPOOL_GPG_KEY")
  TAURI_SIGNING_PRIVATE_KEY_PASSWORD=${TAURI_SIGNING_PRIVATE_KEY_PASSWORD:-}
  SPOOL_GPG_PASSPHRASE=${SPOOL_GPG_PASSPHRASE:-}
elif [ ${#given[@]} -eq 0 ]; then
  dev_keys=true
  mkdir -p "$KEYS"
  chmod 700 "$KEYS"
  if [ ! -f "$KEYS/updater.key" ] || [ ! -f "$KEYS/updater.key.pub" ]; then
    say "making a development updater key pair in $KEYS/"
    "$TAURI" signer generate --ci --force -p "" -w "$KEYS/updater.key" >/dev/null
  fi
  if [ ! -f "$KEYS/gpg-secret.asc" ]; then
    say "making a development GPG key in $KEYS/"
    mkdir -m 700 "$work/gen-gnupg"
    GNUPGHOME="$work/gen-gnupg" gpg --batch --quiet --passphrase '' --quick-gen-key \
      "Spool development key (make dist) <dist@spool.invalid>" rsa3072 sign never 2>/dev/null
    (umask 077; GNUPGHOME="$work/gen-gnupg" gpg --batch --armor --export-secret-keys \
      >"$KEYS/gpg-secret.asc.tmp")
    mv "$KEYS/gpg-secret.asc.tmp" "$KEYS/gpg-secret.asc"
  fi
  TAURI_SIGNING_PRIVATE_KEY=$(cat "$KEYS/updater.key")
  TAURI_SIGNING_PRIVATE_KEY_PASSWORD=""
  SPOOL_UPDATER_PUBKEY=$(cat "$KEYS/updater.key.pub")
  SPOOL_GPG_KEY=$(cat "$KEYS/gpg-secret.asc")
  SPOOL_GPG_PASSPHRASE=""
else
  die "${given[*]} set but ${missing[*]} not: set all three to sign with your own keys, or none to sign with the development keys in $KEYS/ (never a mix)"
fi
export TAURI_SIGNING_PRIVATE_KEY TAURI_SIGNING_PRIVATE_KEY_PASSWORD SPOOL_UPDATER_PUBKEY
# option_env! sees an empty variable as set: only a real endpoint goes in.
if [ -n "${SPOOL_UPDATE_ENDPOINT:-}" ]; then export SPOOL_UPDATE_ENDPOINT; else unset SPOOL_UPDATE_ENDPOINT; fi

# The updater key pair: sign a probe and check it against the public key
# now, not after a 15-minute build. Tauri's key files are base64 of
# minisign's text files.
base64 -d <<<"$SPOOL_UPDATER_PUBKEY" >"$work/updater.pub.minisign" 2>/dev/null \
  && grep -q '^untrusted comment:' "$work/updater.pub.minisign" \
  || die "SPOOL_UPDATER_PUBKEY is not an updater public key (the base64 text 'tauri signer generate' writes to KEY.pub)"
updater_sign() { # FILE VERSION: writes FILE.sig
  local pw=()
  # An empty password from the environment reads as none given; say it.
  [ -z "$TAURI_SIGNING_PRIVATE_KEY_PASSWORD" ] && pw=(--password "")
  "$TAURI" signer sign "${pw[@]}" --app-version "$2" "$1" >"$work/sign.log" 2>&1 \
    || { sed 's/^/  /' "$work/sign.log" >&2; die "cannot sign $(basename "$1") with TAURI_SIGNING_PRIVATE_KEY (wrong password?)"; }
}
updater_verify() { # FILE
  base64 -d "$1.sig" >"$work/check.minisig"
  minisign -Vq -p "$work/updater.pub.minisign" -m "$1" -x "$work/check.minisig"
}
echo probe >"$work/probe"
updater_sign "$work/probe" 0.0.0
updater_verify "$work/probe" 2>/dev/null \
  || die "SPOOL_UPDATER_PUBKEY is not the public key of TAURI_SIGNING_PRIVATE_KEY"

# GPG: the secret key into a private GNUPGHOME; a passphrase (maybe empty)
# reaches gpg through a 0600 file.
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
(umask 077; printf '%s' "$SPOOL_GPG_PASSPHRASE" >"$work/gpg-pass")
gpg_() { gpg --batch --quiet --no-tty --pinentry-mode loopback --passphrase-file "$work/gpg-pass" "$@"; }
printf '%s\n' "$SPOOL_GPG_KEY" | gpg_ --import 2>"$work/gpg.log" \
  || die "SPOOL_GPG_KEY: gpg cannot import it ($(tail -n1 "$work/gpg.log"))"
fpr=$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')
[ -n "$fpr" ] || die "SPOOL_GPG_KEY holds no secret key (export one with gpg --armor --export-secret-keys)"
echo probe | gpg_ -u "$fpr" --clearsign >/dev/null 2>&1 \
  || die "cannot sign with SPOOL_GPG_KEY (wrong or missing SPOOL_GPG_PASSPHRASE?)"
gpg_sign() { gpg_ --yes -u "$fpr" --digest-algo SHA512 "$@"; }

# --- Build -------------------------------------------------------------------
version=$(python3 -c 'import json; print(json.load(open("tauri.conf.json"))["version"])')
say "building spool-cli ($profile)"
${CARGO:-cargo} build --locked "${cargo_profile[@]}" -p spool-cli
# The launcher and the program it execs for everything but uploads
# (crates/spool-cli/src/launch.rs looks for it in ../lib/spool/), packaged
# without debug info (copies: the build's own keep it).
for bin in spool spool-full; do
  [ -x "$target/$profile/$bin" ] || die "$target/$profile/$bin was not built"
  objcopy --strip-debug "$target/$profile/$bin" "$work/$bin"
done
spool_cli="$work/spool"

# What depends on this run: the CLI's path under the target folder, the
# updater public key, and the artifacts. productName "Spool Desktop" makes
# the bundler name both packages spool-desktop (it kebab-cases the product
# name); the desktop entry still says Spool (packaging/spool.desktop).
python3 - "$spool_cli" "$work/spool-full" "$SPOOL_UPDATER_PUBKEY" >"$work/dist.conf.json" <<'EOF'
import json, os, sys
spool, spool_full, pubkey = sys.argv[1], sys.argv[2], sys.argv[3]
files = {"/usr/bin/spool": spool, "/usr/lib/spool/spool-full": spool_full}
# The menu says Spool, whatever the package is called.
template = os.path.abspath("packaging/spool.desktop")
print(json.dumps({
    "productName": "Spool Desktop",
    "bundle": {
        "createUpdaterArtifacts": True,
        "linux": {
            "deb": {"files": files, "desktopTemplate": template},
            "rpm": {"files": files, "desktopTemplate": template},
        },
    },
    "plugins": {"updater": {"pubkey": pubkey}},
}))
EOF
say "building the app ($profile)"
"$TAURI" build "${tauri_profile[@]}" --ci --no-bundle --config "$work/dist.conf.json" \
  -- --locked -p spool-desktop
# What ships carries no debug info (the release profile keeps line tables
# for profiling; a debug build is mostly debug info): a package a third the
# size, installed and updated in a third of the time.
objcopy --strip-debug "$target/$profile/spool-desktop"
say "packaging (.deb, .rpm)"
"$TAURI" bundle "${tauri_profile[@]}" --ci --bundles deb,rpm --config "$work/dist.conf.json"

# --- Collect, sign the rpm, re-sign the updater artifacts --------------------
bundle="$target/$profile/bundle"
shopt -s nullglob
debs=("$bundle"/deb/*_"$version"_*.deb) rpms=("$bundle"/rpm/*-"$version"-*.rpm)
shopt -u nullglob
[ ${#debs[@]} -eq 1 ] || die "expected one .deb of $version in $bundle/deb, found ${#debs[@]}"
[ ${#rpms[@]} -eq 1 ] || die "expected one .rpm of $version in $bundle/rpm, found ${#rpms[@]}"
deb_arch=$(dpkg-deb -f "${debs[0]}" Architecture)
rpm_arch=$(uname -m)
deb="spool-desktop_${version}_${deb_arch}.deb"
rpm="spool-desktop-${version}-1.${rpm_arch}.rpm"
mkdir -p "$out"
touch "$out/.spool-dist"
cp -- "${debs[0]}" "$out/$deb"
cp -- "${rpms[0]}" "$out/$rpm"
# Every library the programs load must come with `apt install`.
python3 scripts/check-deb-depends.py "$out/$deb" \
  || die "$deb does not declare every library it needs: add them to bundle.linux.deb.depends in tauri.conf.json"

say "signing $rpm (GPG)"
rpmsign --addsign \
  --define "__gpg $(command -v gpg)" --define "_gpg_path $GNUPGHOME" --define "_gpg_name $fpr" \
  --define "_gpg_digest_algo sha512" \
  --define "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback --passphrase-file $work/gpg-pass" \
  "$out/$rpm" >"$work/rpmsign.log" 2>&1 || { cat "$work/rpmsign.log" >&2; die "rpmsign failed"; }

# Tauri signed the bundles it wrote; the rpm has changed since (its GPG
# signature) and both have been renamed, so each is signed again with the
# same key, bound to the version, and checked against the public key.
for f in "$deb" "$rpm"; do
  updater_sign "$out/$f" "$version"
  updater_verify "$out/$f" >/dev/null || die "the updater signature of $f does not verify"
done
printf '%s' "$SPOOL_UPDATER_PUBKEY" >"$out/updater.pub"

# --- latest.json ---------------------------------------------------------------
placeholder=false
if [ -n "${SPOOL_DIST_BASE_URL:-}" ]; then base=${SPOOL_DIST_BASE_URL%/}
elif [ -n "${SPOOL_UPDATE_ENDPOINT:-}" ]; then base=${SPOOL_UPDATE_ENDPOINT%/*}
else base="https://spool.invalid/releases/$version"; placeholder=true
fi
python3 - "$out" "$version" "$base" "$deb" "$rpm" "linux-$rpm_arch" \
  "${SPOOL_RELEASE_NOTES:-Spool $version}" >"$out/latest.json" <<'EOF'
import datetime, json, sys
out, version, base, deb, rpm, target, notes = sys.argv[1:]
def entry(name):
    return {"signature": open(f"{out}/{name}.sig").read().strip(), "url": f"{base}/{name}"}
print(json.dumps({
    "version": version,
    "notes": notes,
    "pub_date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "platforms": {target: entry(deb), f"{target}-deb": entry(deb), f"{target}-rpm": entry(rpm)},
}, indent=2))
EOF

# --- The APT repository ----------------------------------------------------------
say "writing the APT repository"
apt="$out/apt"
pool="pool/main/s/spool-desktop"
mkdir -p "$apt/$pool" "$apt/dists/stable/main/binary-$deb_arch"
cp -- "$out/$deb" "$apt/$pool/"
gpg --batch --export "$fpr" >"$apt/spool-archive-keyring.gpg"
gpg --batch --armor --export "$fpr" >"$apt/spool-archive-keyring.asc"
(
  cd "$apt"
  apt-ftparchive packages pool >"dists/stable/main/binary-$deb_arch/Packages"
  gzip -9n -k "dists/stable/main/binary-$deb_arch/Packages"
  apt-ftparchive -o APT::FTPArchive::Release::Origin=Spool -o APT::FTPArchive::Release::Label=Spool \
    -o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Codename=stable \
    -o APT::FTPArchive::Release::Architectures="$deb_arch" -o APT::FTPArchive::Release::Components=main \
    -o APT::FTPArchive::Release::Description="Spool desktop packages" \
    release dists/stable >"$work/Release"
  mv "$work/Release" dists/stable/Release
  gpg_sign --clearsign -o dists/stable/InRelease dists/stable/Release
  gpg_sign --armor --detach-sign -o dists/stable/Release.gpg dists/stable/Release
)

# --- SHA256SUMS -------------------------------------------------------------------
(
  cd "$out"
  sha256sum "$deb" "$deb.sig" "$rpm" "$rpm.sig" latest.json updater.pub \
    apt/spool-archive-keyring.gpg apt/spool-archive-keyring.asc >SHA256SUMS
  gpg_sign --armor --detach-sign -o SHA256SUMS.asc SHA256SUMS
)

size() { du -h --apparent-size -- "$1" | cut -f1; }
say "wrote $out: $deb ($(size "$out/$deb")), $rpm ($(size "$out/$rpm")), latest.json, SHA256SUMS(.asc), apt/"
if $placeholder; then
  say "latest.json's urls are placeholders ($base/…): set SPOOL_DIST_BASE_URL or SPOOL_UPDATE_ENDPOINT to where the files will be served"
fi
if $dev_keys; then
  echo "make dist: signed with the development keys in $KEYS/ — set TAURI_SIGNING_PRIVATE_KEY, SPOOL_UPDATER_PUBKEY and SPOOL_GPG_KEY to sign with your own"
else
  echo "make dist: signed with your keys (GPG ${fpr: -16}); the app trusts updates signed by SPOOL_UPDATER_PUBKEY"
fi
