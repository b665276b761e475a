"""Who may open what: credentials (logins, passwords, tokens) and the site secret."""
