#!/bin/sh
# The container's entry point, in the mautrix bridges' manner: everything lives in /data.
#   1st start: no config.yaml yet; the example is copied there, to be edited; exit.
#   2nd start: no registration.yaml yet; -g fills the tokens into the config and writes the
#              registration for the homeserver; exit.
#   then:      the service runs (database and crypto store in /data unless the config says
#              otherwise).
set -eu
DATA=${COMMUNITIES_DATA:-/data}
EXAMPLE=${COMMUNITIES_EXAMPLE_CONFIG:-/opt/communities-appservice/example-config.yaml}
cd "$DATA"
if [ ! -f config.yaml ]; then
    cp "$EXAMPLE" config.yaml
    echo "Wrote $DATA/config.yaml from the example: edit it (homeserver, domain, database," \
        "permissions), then start the container again." >&2
    exit 0
fi
if [ ! -f registration.yaml ]; then
    # shellcheck disable=SC2086  # COMMUNITIES_COMMAND may hold words (a test sets it)
    ${COMMUNITIES_COMMAND:-communities-appservice} -g -c config.yaml -r registration.yaml
    echo "Wrote $DATA/registration.yaml: add it to the homeserver's app_service_config_files," \
        "restart the homeserver, then start the container again." >&2
    exit 0
fi
# shellcheck disable=SC2086
exec ${COMMUNITIES_COMMAND:-communities-appservice} -c config.yaml
