#!/usr/bin/env bash
# Fetch the PDF fonts from the npm registry at a pinned version and check the tarball's
# integrity: PT Sans (ParaType, SIL Open Font License 1.1; Latin and Cyrillic, including
# the letters of Russia's other languages) as the complete TrueType files Google Fonts
# publishes, from @expo-google-fonts/pt-sans, in four styles, with the font licence as
# OFL.txt, and fonts.css with one @font-face per style.
# Needs npm and openssl; run from anywhere:
#   bash site_builder/fonts/fetch.sh
# The output is committed, so printing never needs Node or the network.
set -euo pipefail
cd "$(dirname "$0")"

package=@expo-google-fonts/pt-sans
version=0.4.1
integrity=sha512-Es20zwpN948YN2GdrsGIlCuqjeF+RGfGgunvcbSMjow/wQzglyisesyuhf8MU2fMpbMBVfY0modhrytumstycg==

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball=$(cd "$work" && npm pack --silent "$package@$version")
actual="sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)"
if [ "$actual" != "$integrity" ]; then
  echo "integrity mismatch for $package@$version: $actual" >&2
  exit 1
fi
tar -xzf "$work/$tarball" -C "$work"

rm -f ./*.ttf ./*.woff
# style folder in the package, then CSS weight and style
faces="400Regular:400:normal 400Regular_Italic:400:italic 700Bold:700:normal 700Bold_Italic:700:italic"
{
  echo "/* PT Sans from $package $version (SIL Open Font License 1.1, see OFL.txt); made by fetch.sh. */"
  for face in $faces; do
    IFS=: read -r name weight style <<<"$face"
    cp "$work/package/$name/PTSans_$name.ttf" .
    echo "@font-face{font-family:\"PT Sans\";font-weight:$weight;font-style:$style;src:url(PTSans_$name.ttf) format(\"truetype\")}"
  done
} >fonts.css
# The font licence, without the byte-order mark the package's copy starts with.
sed '1s/^\xEF\xBB\xBF//' "$work/package/LICENSE_FONT" >OFL.txt
echo "wrote $(ls ./*.ttf | wc -l) fonts, OFL.txt and fonts.css from $package@$version"
