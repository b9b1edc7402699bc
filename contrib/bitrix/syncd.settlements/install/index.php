<?php

use Bitrix\Main\Config\Option;
use Bitrix\Main\EventManager;
use Bitrix\Main\Localization\Loc;

Loc::loadMessages(__FILE__);

/**
 * Installer of syncd.settlements (Marketplace -> Installed solutions -> Install).
 * The class name is the module id with "." -> "_", as CModule::CreateModuleObject() expects.
 */
class syncd_settlements extends CModule
{
    public $MODULE_ID = 'syncd.settlements';
    public $MODULE_VERSION;
    public $MODULE_VERSION_DATE;
    public $MODULE_NAME;
    public $MODULE_DESCRIPTION;
    public $PARTNER_NAME;
    public $PARTNER_URI;

    private const HANDLER = ['sale', 'OnSaleOrderBeforeSaved', 'Syncd\\Settlements\\OrderGuard', 'onSaleOrderBeforeSaved'];

    public function __construct()
    {
        $arModuleVersion = [];
        include __DIR__ . '/version.php';
        $this->MODULE_VERSION = $arModuleVersion['VERSION'];
        $this->MODULE_VERSION_DATE = $arModuleVersion['VERSION_DATE'];
        $this->MODULE_NAME = Loc::getMessage('SYNCD_SETTLEMENTS_MODULE_NAME') ?? 'syncd: settlements';
        $this->MODULE_DESCRIPTION = Loc::getMessage('SYNCD_SETTLEMENTS_MODULE_DESCRIPTION') ?? '';
        $this->PARTNER_NAME = 'syncd';
        $this->PARTNER_URI = '';
    }

    public function DoInstall()
    {
        RegisterModule($this->MODULE_ID);
        $this->InstallEvents();
        $this->InstallFiles();
        return true;
    }

    public function DoUninstall()
    {
        $this->UnInstallEvents();
        $this->UnInstallFiles();
        Option::delete($this->MODULE_ID);
        UnRegisterModule($this->MODULE_ID);
        return true;
    }

    public function InstallEvents()
    {
        [$from, $type, $class, $method] = self::HANDLER;
        EventManager::getInstance()->registerEventHandler($from, $type, $this->MODULE_ID, $class, $method);
        return true;
    }

    public function UnInstallEvents()
    {
        [$from, $type, $class, $method] = self::HANDLER;
        EventManager::getInstance()->unRegisterEventHandler($from, $type, $this->MODULE_ID, $class, $method);
        return true;
    }

    /** The component goes to /local/components/syncd/settlements (recursive copy: pass true, true). */
    public function InstallFiles()
    {
        CopyDirFiles(__DIR__ . '/components', $_SERVER['DOCUMENT_ROOT'] . '/local/components', true, true);
        return true;
    }

    public function UnInstallFiles()
    {
        DeleteDirFilesEx('/local/components/syncd/settlements');
        return true;
    }
}
