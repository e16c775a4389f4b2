// Puppeteer (under @mermaid-js/mermaid-cli, which renders the summaries' Mermaid in tests/wrappers/) drives
// Debian's chromium: it downloads no browser of its own.
module.exports = { skipDownload: true, executablePath: "/usr/bin/chromium" };
