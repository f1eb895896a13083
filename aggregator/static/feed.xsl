<?xml version="1.0" encoding="UTF-8"?>
<!--
  Shows an RSS 2.0 or Atom 1.0 feed written by aggregator as a readable page when it is
  opened in a web browser, with a note on how to subscribe. Feed readers ignore it.
  Links are relative to the feed: every feed folder also holds index.html, rss.xml,
  atom.xml and feed.json.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    exclude-result-prefixes="atom dc">
  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:variable name="title" select="/rss/channel/title | /atom:feed/atom:title"/>
  <xsl:variable name="description" select="/rss/channel/description | /atom:feed/atom:subtitle"/>
  <xsl:variable name="self"
      select="/rss/channel/atom:link[@rel='self']/@href | /atom:feed/atom:link[@rel='self']/@href"/>
  <xsl:variable name="language" select="/rss/channel/language | /atom:feed/@xml:lang"/>

  <xsl:template match="/">
    <html lang="{$language}">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (web feed)</title>
        <link rel="icon" href="data:,"/>
        <style>
          :root { color-scheme: light dark; --fg: #1b1b1b; --bg: #ffffff; --muted: #4a4a4a;
                  --link: #0b57a4; --note: #fff4d6; --line: #d0d0d0; --band: #10243e;
                  --band-fg: #ffffff; }
          @media (prefers-color-scheme: dark) {
            :root { --fg: #ececec; --bg: #121212; --muted: #c4c4c4; --link: #8cc4ff;
                    --note: #2d2611; --line: #3a3a3a; --band: #0a1626; }
          }
          body { margin: 0; font: 1.0625rem/1.55 system-ui, -apple-system, "Segoe UI", Roboto,
                 sans-serif; color: var(--fg); background: var(--bg); }
          .wrap { max-width: 46rem; margin: 0 auto; padding: 0 1rem; }
          a { color: var(--link); }
          /* Chromium (from version 156) lays a deprecation banner over the top of every
             page made with XSLT. The band keeps that room free, so the banner covers
             only the feed's name, which the heading repeats, never the subscribe note. */
          .band { min-height: 5.5rem; display: flex; align-items: flex-end; background: var(--band);
                  color: var(--band-fg); padding: 0.5rem 0; }
          .band p { margin: 0; font-weight: 600; }
          @media (max-width: 40rem) { .band { min-height: 9rem; } }
          .note { background: var(--note); border-bottom: 1px solid var(--line); padding: 1rem 0; }
          .note p { margin: 0.4rem 0; }
          code { font-size: 0.95em; word-break: break-all; background: var(--bg);
                 border: 1px solid var(--line); padding: 0.1rem 0.3rem; }
          h1 { font-size: 1.6rem; line-height: 1.25; margin: 1.5rem 0 0.3rem; }
          .meta { color: var(--muted); font-size: 0.9rem; }
          ol { list-style: none; padding: 0; }
          li { border-top: 1px solid var(--line); padding: 0.9rem 0; }
          h2 { font-size: 1.15rem; line-height: 1.3; margin: 0 0 0.25rem; }
          li p { margin: 0.3rem 0 0; }
        </style>
      </head>
      <body>
        <div class="band">
          <div class="wrap"><p>Web feed: <xsl:value-of select="$title"/></p></div>
        </div>
        <header class="note">
          <div class="wrap">
            <p><strong>This is a web feed.</strong> Feed readers check it for new stories,
              so you see them without visiting the site.</p>
            <p>To subscribe, copy this address into your feed reader:
              <code><xsl:value-of select="$self"/></code></p>
            <p><a href="./">Open the web page for this feed</a>
              · also as <a href="rss.xml">RSS</a>, <a href="atom.xml">Atom</a> and
              <a href="feed.json">JSON Feed</a></p>
          </div>
        </header>
        <main class="wrap">
          <h1><xsl:value-of select="$title"/></h1>
          <p class="meta"><xsl:value-of select="$description"/></p>
          <ol>
            <xsl:apply-templates select="/rss/channel/item | /atom:feed/atom:entry"/>
          </ol>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="item">
    <li>
      <h2><a href="{link}"><xsl:value-of select="title"/></a></h2>
      <div class="meta">
        <xsl:value-of select="dc:creator"/>
        <xsl:if test="dc:creator and pubDate"> · </xsl:if>
        <xsl:if test="pubDate">
          <xsl:call-template name="rss-date">
            <xsl:with-param name="date" select="pubDate"/>
          </xsl:call-template>
        </xsl:if>
      </div>
      <xsl:if test="description">
        <p>
          <xsl:call-template name="html-text">
            <xsl:with-param name="html" select="description"/>
          </xsl:call-template>
        </p>
      </xsl:if>
    </li>
  </xsl:template>

  <xsl:template match="atom:entry">
    <li>
      <h2>
        <a href="{atom:link[not(@rel) or @rel='alternate'][1]/@href}">
          <xsl:value-of select="atom:title"/>
        </a>
      </h2>
      <div class="meta">
        <xsl:value-of select="atom:author/atom:name"/>
        <xsl:if test="atom:author and atom:published"> · </xsl:if>
        <xsl:if test="atom:published">
          <xsl:call-template name="date">
            <xsl:with-param name="iso" select="substring(atom:published, 1, 10)"/>
          </xsl:call-template>
        </xsl:if>
      </div>
      <xsl:choose>
        <xsl:when test="atom:summary[@type='html']">
          <p>
            <xsl:call-template name="html-text">
              <xsl:with-param name="html" select="atom:summary"/>
            </xsl:call-template>
          </p>
        </xsl:when>
        <xsl:when test="atom:summary">
          <p><xsl:value-of select="atom:summary"/></p>
        </xsl:when>
      </xsl:choose>
    </li>
  </xsl:template>
  <!-- Dates as the HTML pages show them ("2 November 2026", in UTC as the feeds are);
       `iso` is YYYY-MM-DD. -->
  <xsl:template name="date">
    <xsl:param name="iso"/>
    <xsl:variable name="months"
        select="'01January,02February,03March,04April,05May,06June,07July,08August,09September,10October,11November,12December,'"/>
    <time datetime="{$iso}">
      <xsl:value-of select="concat(number(substring($iso, 9, 2)), ' ',
          substring-before(substring-after($months, substring($iso, 6, 2)), ','), ' ',
          substring($iso, 1, 4))"/>
    </time>
  </xsl:template>
  <!-- An RSS date as written here: "Mon, 02 Nov 2026 08:40:00 +0000". -->
  <xsl:template name="rss-date">
    <xsl:param name="date"/>
    <xsl:variable name="rest" select="normalize-space(substring-after($date, ','))"/>
    <xsl:variable name="numbers"
        select="'Jan01Feb02Mar03Apr04May05Jun06Jul07Aug08Sep09Oct10Nov11Dec12'"/>
    <xsl:call-template name="date">
      <xsl:with-param name="iso" select="concat(substring($rest, 8, 4), '-',
          substring(substring-after($numbers, substring($rest, 4, 3)), 1, 2), '-',
          substring($rest, 1, 2))"/>
    </xsl:call-template>
  </xsl:template>
  <!-- An HTML fragment (a sanitised excerpt) shown as its text: tags dropped, entities
       decoded. Literal '<' in the text is always escaped, so every '<' starts a tag. -->
  <xsl:template name="html-text">
    <xsl:param name="html"/>
    <xsl:choose>
      <xsl:when test="contains($html, '&lt;')">
        <xsl:call-template name="unescape">
          <xsl:with-param name="text" select="substring-before($html, '&lt;')"/>
        </xsl:call-template>
        <xsl:call-template name="html-text">
          <xsl:with-param name="html" select="substring-after(substring-after($html, '&lt;'), '&gt;')"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise>
        <xsl:call-template name="unescape">
          <xsl:with-param name="text" select="$html"/>
        </xsl:call-template>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>
  <!-- Show &amp; &lt; &gt; as the characters they stand for. -->
  <xsl:template name="unescape">
    <xsl:param name="text"/>
    <xsl:choose>
      <xsl:when test="contains($text, '&amp;')">
        <xsl:value-of select="substring-before($text, '&amp;')"/>
        <xsl:variable name="rest" select="substring-after($text, '&amp;')"/>
        <xsl:variable name="entity" select="substring-before($rest, ';')"/>
        <xsl:choose>
          <xsl:when test="$entity = 'amp'">&amp;</xsl:when>
          <xsl:when test="$entity = 'lt'">&lt;</xsl:when>
          <xsl:when test="$entity = 'gt'">&gt;</xsl:when>
          <xsl:otherwise>&amp;</xsl:otherwise>
        </xsl:choose>
        <xsl:call-template name="unescape">
          <xsl:with-param name="text">
            <xsl:choose>
              <xsl:when test="$entity = 'amp' or $entity = 'lt' or $entity = 'gt'">
                <xsl:value-of select="substring-after($rest, ';')"/>
              </xsl:when>
              <xsl:otherwise><xsl:value-of select="$rest"/></xsl:otherwise>
            </xsl:choose>
          </xsl:with-param>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$text"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>
</xsl:stylesheet>
