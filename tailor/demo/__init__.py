"""The offline demo the quickstart runs: demo code, a local git server, the whole flow."""
