"""What users run: the `inpaintlab` command, photo files in and out, export, mask previews."""
