"""What train and eval runs share: their config, their folder, one-line user errors."""
