"""The HTTP API of mlwarden: one router per area (``routes_*``), the request dependencies
(``deps``) and the OpenAPI document. ``mlwarden.server.create_app`` builds the app from them."""
