"""Operating a school's server: backup, restore, database copy, retention, status."""
