"""One module (a package past ~400 lines) per feature; features never import each other."""
