"""The site model: every stack setting, validated and loaded before any resource exists."""
