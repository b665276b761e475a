"""What leaves the school: the outbox, letters, SMTP delivery, campaigns and reminders."""
