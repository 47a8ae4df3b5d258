"""``imggate audit``: which tags of a repository may ship, and which a cleanup policy keeps."""
