#!/bin/sh
# fetch-list URL FILE — shipped by Floodgate (`floodgate config fetch-list`; the package installs it as
# /usr/libexec/floodgate/fetch-list, run by floodgate-fetch-list@NAME.timer).
#
# Fetches a block list of networks (one CIDR or address per line, '#' and ';' comments: Spamhaus DROP, FireHOL
# level 1, your own) and puts it at FILE atomically — a temporary file beside it, renamed into place — for a
# `deny: [{file: FILE}]` entry of the agent's config, which applies a file renamed into place at its next check.
# The file already there is kept, and the exit status is 1, when the download fails, when what came holds no
# network (an HTML error page), or when it holds fewer than FLOODGATE_MIN_KEEP percent (default 50) of the
# networks of the file it would replace: a list cut short would lift the blocks of its missing lines. (Lines wider
# than a /8, or covering what the config allow-lists, are left out by the agent itself.)
#
# Environment: FLOODGATE (the floodgate binary, default: floodgate on the PATH), FLOODGATE_MIN_KEEP (0 accepts any
# shrink), FLOODGATE_FETCH_PROTOCOLS (curl's --proto, default =https: a list fetched in clear could be altered on
# the way).
set -eu
if [ $# -ne 2 ]; then
    echo "usage: fetch-list URL FILE" >&2
    exit 2
fi
url=$1
target=$2
floodgate=${FLOODGATE:-floodgate}
min_keep=${FLOODGATE_MIN_KEEP:-50}
protocols=${FLOODGATE_FETCH_PROTOCOLS:-=https}

dir=$(dirname "$target")
tmp=$(mktemp "$dir/.$(basename "$target").XXXXXX")
trap 'rm -f "$tmp"' EXIT
trap 'exit 1' INT TERM HUP   # the EXIT trap then removes the temporary file
curl --fail --silent --show-error --location --proto "$protocols" --proto-redir "$protocols" --max-time 120 \
    --max-filesize 67108864 --output "$tmp" --url "$url"
if ! new=$("$floodgate" config check-list --count "$tmp"); then
    echo "fetch-list: $url holds no list of networks: kept $target" >&2
    exit 1
fi
if [ -s "$target" ]; then
    old=$("$floodgate" config check-list --count "$target" 2>/dev/null || echo 0)
    if [ $((new * 100)) -lt $((old * min_keep)) ]; then
        echo "fetch-list: $url holds $new networks, fewer than $min_keep% of the $old in $target: kept $target" >&2
        exit 1
    fi
fi
chmod 0644 "$tmp"
mv -fT "$tmp" "$target"   # -T: onto FILE itself, even if it is a link to a folder
trap - EXIT
echo "fetch-list: $target: $new networks from $url"
