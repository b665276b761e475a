"""The server side of otmetka: entry points (cli, runner, endpoint, demo) over the runtime
that wires the features (acts, access, lists, mail, paper, ops) to the exchange of journal
data and the shared core. docs/architecture.md draws the layers."""
