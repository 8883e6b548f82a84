"""Pure decisions, one module per idea: nothing here awaits, touches the network or the
database. Every rule is a function of plain values, tested with tables of cases; the layers
above load the values, ask these functions, then act.

    model       the domain's words (roles, join modes, permissions) and the room marker
    ids         what Matrix identifiers look like
    power       power-level tables; whether the bot can hold a room
    joins       join rules and space links
    limits      names, texts, admin and group limits
    moderation  who may be removed or banned, and where
    drift       the records against a room's actual state
    blueprints  the requests that create a community's rooms
    membership  a membership event classified once: join, leave, kick, ban, invite, knock
"""
