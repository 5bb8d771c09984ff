"""From predictions to conclusions: metrics, strategy comparison, the HTML report."""
