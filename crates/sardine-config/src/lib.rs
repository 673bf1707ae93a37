//! Configuration files of sarde and the GitLab executor: INI sections, sizes, paths.
