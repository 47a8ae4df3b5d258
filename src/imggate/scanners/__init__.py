"""Scanner evidence: read, validate and merge vulnerability reports; run Trivy.

Public API (import from the submodules; this package imports nothing so that
the CLI stays fast to start):

* :func:`imggate.scanners.detect.load_report` ``(path, kind=None) -> ScanReport``
  and :func:`~imggate.scanners.detect.parse_report` ``(data, *, source, kind=None)``:
  Trivy JSON (SchemaVersion 2 and the legacy array), Trivy SARIF, CycloneDX
  with vulnerabilities, Grype JSON, GitLab container-scanning reports and
  imggate's own findings JSON;
  auto-detected unless ``kind`` names one of :data:`~imggate.scanners.detect.KINDS`.
  Any malformed input is a :class:`~imggate.errors.ReportError` naming the
  file and the JSON path.
* :func:`imggate.scanners.merge.merge` ``(reports, *, prefer=()) -> tuple[Finding, ...]``:
  one finding per (vulnerability, package, version), every source listed,
  the most severe rating unless ``prefer`` names the scanner that decides.
* :func:`imggate.scanners.trivy_runner.run_trivy` ``(image, *, username, password,
  options: TrivyOptions) -> ScanReport``: runs ``trivy image`` on the
  digest-pinned reference; failures are :class:`~imggate.errors.ScannerError`.
"""
