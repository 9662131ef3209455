// GPUs by PCI address, read from sysfs: the one thing that tells identical GPUs apart on Linux.
// Dawn selects adapters by name only, so a worker pins one of several identical GPUs through Mesa's
// device-select Vulkan layer, which takes a PCI address in DRI_PRIME and, with a trailing '!',
// shows the process that GPU alone (docs/gpu.md, "Several identical GPUs").
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** PCI vendor IDs of the vendor names WebGPU reports. */
const PCI_VENDOR_IDS: Readonly<Record<string, string>> = { nvidia: '0x10de', amd: '0x1002', intel: '0x8086' };

/** PCI classes of GPUs: VGA-compatible (0x0300xx) and 3D controllers (0x0302xx, data-centre GPUs). */
const GPU_CLASS = /^0x030[02]/;

function readTrimmed(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

/** PCI addresses ("0000:41:00.0") of the GPUs of `vendor` (WebGPU's name for it), in address order; [] when unknown. */
export function gpuPciAddresses(vendor: string, root = '/sys/bus/pci/devices'): string[] {
  const id = PCI_VENDOR_IDS[vendor.toLowerCase()];
  if (id === undefined) return [];
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return [];
  }
  return entries
    .filter((address) => readTrimmed(join(root, address, 'vendor')) === id && GPU_CLASS.test(readTrimmed(join(root, address, 'class'))))
    .sort();
}

/** Mesa's device-select tag for one GPU alone: "pci-0000_41_00_0!". */
export function driPrimeTag(address: string): string {
  return `pci-${address.replace(/[:.]/g, '_')}!`;
}
