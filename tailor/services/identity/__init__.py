"""Single sign-on: the identity provider client, people provisioned from it, its flows."""
