"""Fleet status: every site the repository declares, held against what ARM reports."""
